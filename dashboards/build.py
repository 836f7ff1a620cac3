"""Generate WardWatch's Grafana provisioning tree: ``python -m dashboards.build [--out DIR]``.

Who calls it: a developer after changing a dashboard (the output is committed), and
``tests/dashboards/test_generated.py``, which regenerates into a temporary directory and fails
on any difference. Needs no network: Grafana's own ``grafana-foundation-sdk`` (pinned in
pyproject.toml) builds the dashboard and alert-rule models, PyYAML writes the YAML.

What it writes under ``--out`` (default: this folder):

- ``provisioning/datasources/wardwatch.yaml``: the InfluxDB data source, InfluxQL, uid
  ``wardwatch-influx``; URL, database, user and password from the environment of Grafana;
- ``provisioning/dashboards/wardwatch.yaml``: a file provider for ``json/``;
- ``json/*.json``: five dashboards (``DASHBOARDS``), fixed uids ``ww-...``;
- ``provisioning/alerting/wardwatch.yaml``: ward-level alert rules, contact point, policy.

Every query is raw InfluxQL against the schema of docs/design.md ("InfluxDB schema"); the
measurement and field names come from ``gateway/lineproto.py`` and ``provisioning/influx.py``.
``render()`` is pure (path -> text); ``write()`` is the only I/O.

Where the SDK has no type (it ships no InfluxDB query model, and no datasource-specific
annotation fields), ``InfluxQLTarget`` supplies the JSON Grafana's InfluxDB plugin reads, and
``_post_process`` adds the annotation columns; each place says so.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml  # PyYAML (pyproject: pyyaml): writes the provisioning YAML files
from grafana_foundation_sdk.builders import alerting as alert_b
from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.builders import expr as expr_b
from grafana_foundation_sdk.builders import stat as stat_b
from grafana_foundation_sdk.builders import table as table_b
from grafana_foundation_sdk.builders import timeseries as ts_b
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import alerting as alert_m
from grafana_foundation_sdk.models import common as common_m
from grafana_foundation_sdk.models import dashboard as dash_m

from provisioning import influx as influx_prov

HERE = Path(__file__).resolve().parent

DS_UID = "wardwatch-influx"
DS_TYPE = "influxdb"
DS = dash_m.DataSourceRef(type_val=DS_TYPE, uid=DS_UID)
EXPR_UID = "__expr__"
FOLDER = "WardWatch"
FOLDER_UID = "wardwatch"

# Retention policies and the downsampled measurement, as `wardwatch provision influx` makes them.
RAW = influx_prov.RAW_POLICY  # autogen
TREND = influx_prov.TREND_POLICY  # trend
TREND_M = influx_prov.TREND_MEASUREMENT  # vitals_1m
# Bed detail reads the 1-minute trend once one pixel of the graph spans a minute or more.
TREND_FROM_INTERVAL_MS = 60_000
MAX_DATA_POINTS = 1000

# Colours of the ward view (gateway/cli/wardview.py): red high, yellow medium, cyan technical.
RED, YELLOW, CYAN, GREEN = "red", "yellow", "#00bcd4", "green"

# Bed names that are not beds: a device without a bed, and ward-level alarms (alarms_delayed).
NOT_BEDS = """"bed" != 'unassigned' AND "bed" != '-'"""
WARD = """"ward" =~ /^$ward$/"""
BED = """"bed" =~ /^$bed$/"""


# --- InfluxQL targets ---------------------------------------------------------------------

class InfluxQLQuery(cogvariants.Dataquery):
    """One InfluxQL target as Grafana's InfluxDB plugin stores it. The SDK has no InfluxDB
    query type, so this is ours; it is a ``Dataquery`` like the SDK's own and encodes the same way."""

    def __init__(self, ref_id: str, query: str, fmt: str, alias: str | None, hide: bool):
        self.ref_id, self.query, self.fmt, self.alias, self.hide = ref_id, query, fmt, alias, hide

    def to_json(self) -> dict:
        out = {
            "refId": self.ref_id,
            "datasource": {"type": DS_TYPE, "uid": DS_UID},
            "query": self.query,
            "rawQuery": True,
            "resultFormat": self.fmt,
        }
        if self.alias:
            out["alias"] = self.alias
        if self.hide:
            out["hide"] = True
        return out


class InfluxQLTarget(cogbuilder.Builder[cogvariants.Dataquery]):
    """Builder for ``InfluxQLQuery``: ``fmt`` is ``time_series`` or ``table``."""

    def __init__(self, ref_id: str, query: str, fmt: str = "time_series", alias: str | None = None,
                 hide: bool = False):
        self._q = InfluxQLQuery(ref_id, " ".join(query.split()), fmt, alias, hide)

    def build(self) -> InfluxQLQuery:
        return self._q


def q(ref: str, text: str, fmt: str = "time_series", alias: str | None = None) -> InfluxQLTarget:
    return InfluxQLTarget(ref, text, fmt, alias)


# --- small helpers over the SDK -------------------------------------------------------------

def thresholds(*steps: tuple[float | None, str]) -> dash_b.ThresholdsConfig:
    return (dash_b.ThresholdsConfig().mode(dash_m.ThresholdsMode.ABSOLUTE)
            .steps([dash_m.Threshold(value=v, color=c) for v, c in steps]))


def text_colours(mapping: dict[str, tuple[str, str]]) -> list:
    """A value-to-text mapping: value -> (display text, colour)."""
    return [dash_m.ValueMap(options={k: dash_m.ValueMappingResult(text=t, color=c, index=i)
                                     for i, (k, (t, c)) in enumerate(mapping.items())})]


def prop(id_: str, value) -> dash_m.DynamicConfigValue:
    return dash_m.DynamicConfigValue(id_val=id_, value=value)


def transform(id_: str, options: dict, only_ref: str | None = None) -> dash_m.DataTransformerConfig:
    """A Grafana transformation; ``only_ref`` applies it to one query's results (refId)."""
    matcher = dash_m.MatcherConfig(id_val="byRefId", options=only_ref) if only_ref else None
    return dash_m.DataTransformerConfig(id_val=id_, options=options, filter_val=matcher)


def pos(x: int, y: int, w: int, h: int) -> dash_m.GridPos:
    return dash_m.GridPos(x=x, y=y, w=w, h=h)


def query_var(name: str, label: str, query: str, multi: bool = True, include_all: bool = True,
              hide: dash_m.VariableHide = dash_m.VariableHide.DONT_HIDE) -> dash_b.QueryVariable:
    v = (dash_b.QueryVariable(name).label(label).datasource(DS).query(query).multi(multi)
         .include_all(include_all).refresh(dash_m.VariableRefresh.ON_DASHBOARD_LOAD)
         .sort(dash_m.VariableSort.ALPHABETICAL_ASC).hide(hide))
    return v


WARD_VAR_QUERY = 'SHOW TAG VALUES FROM "vitals" WITH KEY = "ward"'
BED_VAR_QUERY = f'SHOW TAG VALUES FROM "vitals" WITH KEY = "bed" WHERE {WARD} AND {NOT_BEDS}'
INSTANCE_VAR_QUERY = 'SHOW TAG VALUES FROM "gateway" WITH KEY = "instance"'


def ward_var(multi: bool = True) -> dash_b.QueryVariable:
    return query_var("ward", "Ward", WARD_VAR_QUERY, multi=multi, include_all=multi)


def bed_var(multi: bool = True) -> dash_b.QueryVariable:
    return query_var("bed", "Bed", BED_VAR_QUERY, multi=multi, include_all=multi)


def dashboard(uid: str, title: str, description: str, tags: list[str], time_from: str = "now-1h",
              refresh: str = "10s") -> dash_b.Dashboard:
    return (dash_b.Dashboard(title).uid(uid).description(description).tags(["wardwatch", *tags])
            .time(time_from, "now").refresh(refresh).timezone("browser").readonly()
            .tooltip(dash_m.DashboardCursorSync.CROSSHAIR)
            .link(dash_b.DashboardLink("WardWatch").type(dash_m.DashboardLinkType.DASHBOARDS)
                  .tags(["wardwatch"]).as_dropdown(True).include_vars(True).keep_time(True)))


# --- Ward overview --------------------------------------------------------------------------

def latest_vitals(bed: str) -> str:
    return f"""SELECT last("hr") AS "pulse", last("spo2") AS "SpO2", last("temp") AS "temp",
        last("probe") AS "probe", last("sim") AS "simulated" FROM "vitals"
        WHERE {WARD} AND {bed} AND time > now() - 10m GROUP BY "ward", "bed\""""


def last_seen(bed: str) -> str:
    # A single selector keeps the selected point's own time: the last reading's timestamp.
    return f"""SELECT last("seq") AS "seq" FROM "vitals" WHERE {WARD} AND {bed} AND time > now() - 24h
        GROUP BY "ward", "bed\""""


def latest_news2(bed: str) -> str:
    return f"""SELECT last("score") AS "NEWS2", last("band") AS "band", last("partial") AS "partial"
        FROM "news2" WHERE {WARD} AND {bed} AND time > now() - 15m GROUP BY "ward", "bed\""""


# The active alarms: each (bed, code)'s latest event, kept when its state is not "cleared".
# The selector's point carries the priority and kind tags of that latest event, so an
# escalated alarm shows its current priority. 7 days back, as `wardwatch alarms report` looks.
def active_alarms(where: str, columns: str = '"priority", "kind", "message"') -> str:
    return f"""SELECT last("state") AS "state", {columns} FROM "alarm"
        WHERE {where} AND time > now() - 7d GROUP BY "ward", "bed", "code\""""


def active_count(bed: str, cond: str, name: str) -> str:
    return f"""SELECT count("state") AS "{name}" FROM ({active_alarms(f"{WARD} AND {bed}")})
        WHERE "state" != 'cleared' AND {cond} GROUP BY "ward", "bed\""""


ALARM_CLASSES = (
    # (column, condition on the latest event, colour): the ward view's colours.
    ("high", """"kind" = 'physiological' AND "priority" = 'high'""", RED),
    ("medium", """"kind" = 'physiological' AND "priority" != 'high'""", YELLOW),
    ("technical", """"kind" = 'technical'""", CYAN),
)


def bed_targets(bed: str) -> list[InfluxQLTarget]:
    targets = [q("A", latest_vitals(bed), "table"), q("B", last_seen(bed), "table"),
               q("C", latest_news2(bed), "table")]
    targets += [q(ref, active_count(bed, cond, name), "table")
                for ref, (name, cond, _) in zip("DEF", ALARM_CLASSES)]
    return targets


def bed_overrides(panel):
    panel.override_by_name("pulse", [prop("unit", "bpm"), prop("decimals", 0)])
    panel.override_by_name("SpO2", [prop("unit", "percent"), prop("decimals", 0)])
    panel.override_by_name("temp", [prop("unit", "celsius"), prop("decimals", 1)])
    panel.override_by_name("NEWS2", [prop("thresholds", {"mode": "absolute", "steps": [
        {"value": None, "color": GREEN}, {"value": 5, "color": YELLOW}, {"value": 7, "color": RED}]})])
    panel.override_by_name("probe", [prop("mappings", [{"type": "value", "options": {
        "ok": {"text": "probe ok", "color": GREEN, "index": 0},
        "off": {"text": "PROBE OFF", "color": CYAN, "index": 1},
        "fault": {"text": "PROBE FAULT", "color": CYAN, "index": 2}}}])])
    panel.override_by_name("simulated", [prop("mappings", [{"type": "value", "options": {
        "true": {"text": "SIMULATED", "color": "purple", "index": 0},
        "false": {"text": "real", "color": "transparent", "index": 1}}}])])
    panel.override_by_name("last seen", [prop("unit", "dateTimeFromNow")])
    for name, _, colour in ALARM_CLASSES:
        panel.override_by_name(name, [prop("displayName", f"{name} alarms"), prop("thresholds", {
            "mode": "absolute", "steps": [{"value": None, "color": "transparent"}, {"value": 1, "color": colour}]})])
    return panel


# Figures per bed come from several queries; "merge" joins their rows on the common ward and
# bed columns. Only B's time means something (the last reading): it becomes "last seen"; the
# other queries' Time (their window's start) is dropped first, or no two rows would merge.
MERGE_BY_BED = [
    transform("organize", {"renameByName": {"Time": "last seen"}}, only_ref="B"),
    transform("organize", {"excludeByName": {"Time": True, "band": True, "partial": True, "seq": True}}),
    transform("merge", {}),
]


def ward_overview() -> dash_b.Dashboard:
    d = dashboard("ww-ward-overview", "Ward overview",
                  "Every bed of the ward at a glance: latest pulse, SpO2, temperature, NEWS2, active alarms "
                  "(red high, yellow medium, cyan technical), probe, last seen; simulated devices marked. "
                  "Secondary display, not a medical device: bedside alarms stay primary.",
                  ["ward"], refresh="5s")
    d.with_variable(ward_var()).with_variable(
        query_var("bed", "Bed", BED_VAR_QUERY, hide=dash_m.VariableHide.HIDE_VARIABLE))
    tile = (stat_b.Panel().id(1).title("Bed $bed").repeat("bed").repeat_direction("h").max_per_row(6)
            .grid_pos(pos(0, 0, 4, 7)).datasource(DS).targets(bed_targets(BED))
            .description("One tile per bed (repeated over the bed variable). Colours: red high, yellow medium "
                         "(and low), cyan technical alarms; NEWS2 yellow from 5, red from 7.")
            .reduce_options(common_b.ReduceDataOptions().values(False).calcs(["lastNotNull"]).fields("/.*/"))
            .text_mode(common_m.BigValueTextMode.VALUE_AND_NAME).color_mode(common_m.BigValueColorMode.BACKGROUND)
            .graph_mode(common_m.BigValueGraphMode.NONE).orientation(common_m.VizOrientation.HORIZONTAL)
            .thresholds(thresholds((None, "text"))).no_value("--")
            .transformations([*MERGE_BY_BED, transform("organize", {"excludeByName": {"ward": True, "bed": True}})]))
    d.with_panel(bed_overrides(tile))
    table = (table_b.Panel().id(2).title("Ward $ward: all beds").grid_pos(pos(0, 7, 24, 10)).datasource(DS)
             .description("The same figures as the tiles, one row per bed.")
             .targets(bed_targets(BED)).transformations(MERGE_BY_BED)
             .cell_options(common_m.TableColoredBackgroundCellOptions()).thresholds(thresholds((None, "text")))
             .sort_by([common_b.TableSortByFieldState().display_name("bed")]))
    d.with_panel(bed_overrides(table))
    alarms = (table_b.Panel().id(3).title("Active alarms").grid_pos(pos(0, 17, 24, 8)).datasource(DS)
              .description("Alarms not cleared: each bed and code's latest event (7 days back).")
              .with_target(q("A", f"""SELECT * FROM ({active_alarms(WARD, '"priority", "kind", "message", "since_ms", "acked_by", "simulated"')})
                  WHERE "state" != 'cleared' GROUP BY "ward", "bed\"""", "table"))
              .override_by_name("priority", [prop("custom.cellOptions", {"type": "color-background"}),
                                             prop("mappings", text_colours({"high": ("high", RED),
                                                                            "medium": ("medium", YELLOW),
                                                                            "low": ("low", YELLOW)}))])
              .override_by_name("kind", [prop("custom.cellOptions", {"type": "color-background"}),
                                         prop("mappings", text_colours({"technical": ("technical", CYAN)}))])
              .override_by_name("since_ms", [prop("unit", "dateTimeAsIso"), prop("displayName", "since")]))
    d.with_panel(alarms)
    return d


# --- Bed detail -----------------------------------------------------------------------------

def trend_pair(field: str, name: str) -> list[InfluxQLTarget]:
    """The raw and the downsampled query of one vital sign; exactly one returns rows.

    Grafana sets ``$__interval_ms`` from the time range and the panel width (1000 points here):
    1 h -> 5 s, 12 h -> 30 s, 24 h -> 1 min, 7 d -> 10 min. InfluxQL folds the comparison of
    two numbers in WHERE to true or false, so below one minute per point the raw policy
    answers, from one minute up the 1-minute means of ``trend.vitals_1m``. Same alias: one line.
    """
    where = f"{WARD} AND {BED} AND $timeFilter"
    return [
        q("A", f"""SELECT mean("{field}") AS "{name}" FROM "{RAW}"."vitals" WHERE {where}
            AND $__interval_ms < {TREND_FROM_INTERVAL_MS} GROUP BY time($__interval) fill(none)""", alias=name),
        q("B", f"""SELECT mean("{field}_mean") AS "{name}" FROM "{TREND}"."{TREND_M}" WHERE {where}
            AND $__interval_ms >= {TREND_FROM_INTERVAL_MS} GROUP BY time($__interval) fill(none)""", alias=name),
    ]


# The limits in force, per vital sign: `limits` fields written by the gateway (lineproto.limits).
LIMIT_FIELDS = {
    "hr": ("hr_extreme_high", "hr_high", "hr_low", "hr_extreme_low"),
    "spo2": ("spo2_low", "spo2_desat"),
    "temp": ("temp_high", "temp_low"),
}


def limits_query(field: str) -> str:
    cols = ", ".join(f'last("{f}") AS "{f}"' for f in LIMIT_FIELDS[field])
    # No time filter: the gateway writes limits at start and on change, maybe long before the range.
    return f"""SELECT {cols} FROM "limits" WHERE {WARD} AND {BED} GROUP BY "ward", "bed\""""


def vital_panel(id_: int, y: int, field: str, name: str, unit: str, lo: float, hi: float) -> ts_b.Panel:
    p = (ts_b.Panel().id(id_).title(name).grid_pos(pos(0, y, 24, 8)).datasource(DS)
         .max_data_points(MAX_DATA_POINTS).unit(unit).min(lo).max(hi)
         .description(f"{name}: raw readings (mean per interval) up to 12 h, the 1-minute trend beyond; "
                      "the limits in force for this bed drawn as threshold lines.")
         .targets([*trend_pair(field, name), q("L", limits_query(field), "table")])
         .thresholds_style(common_b.GraphThresholdsStyleConfig().mode(common_m.GraphThresholdsStyleMode.LINE))
         .thresholds(thresholds((None, "transparent")))
         .span_nulls(True).line_width(2))
    # "Config from query results": each limit in L becomes a threshold of the plotted series.
    mappings = [{"fieldName": f, "handlerKey": "threshold1",
                 "handlerArguments": {"threshold": {"color": RED if "extreme" in f or "desat" in f else YELLOW}}}
                for f in LIMIT_FIELDS[field]]
    mappings.append({"fieldName": "Time", "handlerKey": "__ignore"})
    p.with_transformation(transform("configFromData", {"configRefId": "L", "applyTo": {"id": "byType",
                                                                                      "options": "number"},
                                                       "mappings": mappings}))
    return p


def bed_detail() -> dash_b.Dashboard:
    d = dashboard("ww-bed-detail", "Bed detail",
                  "One bed's trends: pulse, SpO2, temperature with its limits in force, NEWS2, and its alarm "
                  "events as annotations. Presets 1 h, 12 h, 7 d; beyond 12 h the 1-minute trend policy is read.",
                  ["bed"], time_from="now-12h", refresh="30s")
    d.with_variable(ward_var(multi=False)).with_variable(bed_var(multi=False))
    d.timepicker(dash_b.TimePicker().refresh_intervals(["10s", "30s", "1m", "5m"]).quick_ranges([
        dash_b.TimeOption().display("Last 1 hour").from_val("now-1h").to("now"),
        dash_b.TimeOption().display("Last 12 hours").from_val("now-12h").to("now"),
        dash_b.TimeOption().display("Last 7 days").from_val("now-7d").to("now"),
    ]))
    for preset, title in (("now-1h", "1 h"), ("now-12h", "12 h"), ("now-7d", "7 d")):
        d.link(dash_b.DashboardLink(title).type(dash_m.DashboardLinkType.LINK).icon("dashboard")
               .url(f"/d/ww-bed-detail/bed-detail?from={preset}&to=now&var-ward=${{ward}}&var-bed=${{bed}}")
               .tooltip(f"this bed, last {title}"))
    d.annotation(dash_b.AnnotationQuery().name("Alarm events").datasource(DS).enable(True).icon_color(RED))
    d.with_panel(vital_panel(1, 0, "hr", "Pulse", "bpm", 30, 200))
    d.with_panel(vital_panel(2, 8, "spo2", "SpO2", "percent", 70, 100))
    d.with_panel(vital_panel(3, 16, "temp", "Temperature", "celsius", 33, 42))
    d.with_panel(ts_b.Panel().id(4).title("NEWS2").grid_pos(pos(0, 24, 24, 7)).datasource(DS)
                 .max_data_points(MAX_DATA_POINTS).min(0).max(20).decimals(0)
                 .description("NEWS2 aggregate (partial when observations are missing); yellow from 5, red from 7.")
                 .with_target(q("A", f"""SELECT max("score") AS "NEWS2" FROM "news2" WHERE {WARD} AND {BED}
                     AND $timeFilter GROUP BY time($__interval) fill(none)""", alias="NEWS2"))
                 .thresholds_style(common_b.GraphThresholdsStyleConfig().mode(common_m.GraphThresholdsStyleMode.DASHED))
                 .thresholds(thresholds((None, GREEN), (5, YELLOW), (7, RED)))
                 .draw_style(common_m.GraphDrawStyle.LINE).line_interpolation(common_m.LineInterpolation.STEP_AFTER))
    d.with_panel(table_b.Panel().id(5).title("Alarm events of this bed").grid_pos(pos(0, 31, 24, 8)).datasource(DS)
                 .with_target(q("A", BED_EVENTS, "table")))
    return d


BED_EVENTS = f"""SELECT "event", "code", "priority", "kind", "state", "message", "value", "limit", "acked_by",
    "simulated" FROM "alarm" WHERE {WARD} AND {BED} AND $timeFilter ORDER BY time DESC LIMIT 500"""
# Dashboard annotations: the InfluxDB plugin's own columns (title/text/tags), not in the SDK.
ALARM_ANNOTATION = {
    "query": f"""SELECT "message", "event", "code", "priority" FROM "alarm" WHERE {WARD} AND {BED} AND $timeFilter""",
    "titleColumn": "event",
    "textColumn": "message",
    "tagsColumn": "code,priority",
}


# --- Alarms ---------------------------------------------------------------------------------

ALARM_WINDOW = f"""{WARD} AND {BED} AND {NOT_BEDS} AND $timeFilter"""
# `wardwatch alarms report` figures (gateway/clinical/alarmload.py), in InfluxQL:
RAISED = f"""SELECT count("alarm_id") AS "raised" FROM "alarm" WHERE "event" = 'raised' AND {ALARM_WINDOW}"""


def acked(tags: str) -> str:
    """Distinct alarms with an "acked" event in the range (see README for the difference from
    the report), per ``tags``. The second subquery adds 0 for every group that raised alarms,
    so "none acknowledged" is a 0, not a missing row."""
    return f"""SELECT sum("n") AS "acked" FROM
        (SELECT count(distinct("alarm_id")) AS "n" FROM "alarm" WHERE "event" = 'acked' AND {ALARM_WINDOW} GROUP BY {tags}),
        (SELECT count("alarm_id") * 0 AS "n" FROM "alarm" WHERE "event" = 'raised' AND {ALARM_WINDOW} GROUP BY {tags})
        GROUP BY {tags}"""
# Bed-days: per bed, first to last reading in the range. The sum of elapsed() between
# consecutive readings is exactly last minus first; in ns, / 86 400 s.
BED_DAYS = f"""SELECT sum("elapsed") / 86400000000000 AS "bed_days" FROM (SELECT elapsed("seq", 1ns) FROM "vitals"
    WHERE {ALARM_WINDOW} GROUP BY "ward", "bed")"""


def per(query: str, tags: str) -> str:
    return f"{query} GROUP BY {tags}"


LOAD_CALC = [
    transform("organize", {"excludeByName": {"Time": True}}),
    transform("merge", {}),
    transform("calculateField", {"mode": "binary", "alias": "alarms per bed-day",
                                 "binary": {"left": "raised", "operator": "/", "right": "bed_days"}}),
    transform("calculateField", {"mode": "binary", "alias": "share acknowledged",
                                 "binary": {"left": "acked", "operator": "/", "right": "raised"}}),
]


def alarms_dash() -> dash_b.Dashboard:
    d = dashboard("ww-alarms", "Alarms",
                  "Active alarms, alarm history, and the alarm load (alarms per bed-day, share acknowledged) "
                  "as `wardwatch alarms report` computes it.", ["alarms"], time_from="now-24h", refresh="30s")
    d.with_variable(ward_var()).with_variable(bed_var())
    d.with_panel(table_b.Panel().id(1).title("Active alarms").grid_pos(pos(0, 0, 24, 8)).datasource(DS)
                 .with_target(q("A", f"""SELECT * FROM ({active_alarms(f"{WARD} AND {BED}",
                                '"priority", "kind", "message", "since_ms", "acked_by", "simulated"')})
                                WHERE "state" != 'cleared' GROUP BY "ward", "bed\"""", "table"))
                 .override_by_name("priority", [prop("custom.cellOptions", {"type": "color-background"}),
                                                prop("mappings", text_colours({"high": ("high", RED),
                                                                               "medium": ("medium", YELLOW),
                                                                               "low": ("low", YELLOW)}))])
                 .override_by_name("since_ms", [prop("unit", "dateTimeAsIso"), prop("displayName", "since")]))
    for id_, x, title, unit in ((2, 0, "Alarms per bed-day", "none"), (3, 8, "Share acknowledged", "percentunit")):
        d.with_panel(stat_b.Panel().id(id_).title(title).grid_pos(pos(x, 8, 8, 5)).datasource(DS).unit(unit)
                     .description("Same definitions as `wardwatch alarms report` over the dashboard's range; "
                                  "see dashboards/README.md for where InfluxQL differs.")
                     .targets([q("A", per(RAISED, '"ward"'), "table"), q("B", per(BED_DAYS, '"ward"'), "table"),
                               q("C", acked('"ward"'), "table")])
                     .transformations([*LOAD_CALC, transform("organize", {"includeByName": {
                         "ward": True, title.lower() if id_ == 3 else "alarms per bed-day": True}})])
                     .reduce_options(common_b.ReduceDataOptions().values(True).calcs(["lastNotNull"]).fields("")))
    d.with_panel(stat_b.Panel().id(4).title("Alarms raised").grid_pos(pos(16, 8, 8, 5)).datasource(DS)
                 .with_target(q("A", per(RAISED, '"ward"'), "table"))
                 .reduce_options(common_b.ReduceDataOptions().values(True).calcs(["lastNotNull"]).fields("")))
    d.with_panel(table_b.Panel().id(5).title("Alarm load per bed").grid_pos(pos(0, 13, 12, 9)).datasource(DS)
                 .targets([q("A", per(RAISED, '"ward", "bed"'), "table"), q("B", per(BED_DAYS, '"ward", "bed"'), "table"),
                           q("C", acked('"ward", "bed"'), "table")])
                 .transformations(LOAD_CALC)
                 .sort_by([common_b.TableSortByFieldState().display_name("raised").desc(True)]))
    d.with_panel(table_b.Panel().id(6).title("Alarms by code").grid_pos(pos(12, 13, 12, 9)).datasource(DS)
                 .with_target(q("A", per(RAISED, '"code"'), "table"))
                 .sort_by([common_b.TableSortByFieldState().display_name("raised").desc(True)]))
    d.with_panel(table_b.Panel().id(7).title("Alarm history").grid_pos(pos(0, 22, 24, 10)).datasource(DS)
                 .with_target(q("A", f"""SELECT "bed", "event", "code", "priority", "kind", "state", "message", "value",
                     "limit", "acked_by", "simulated" FROM "alarm" WHERE {WARD} AND {BED} AND $timeFilter
                     ORDER BY time DESC LIMIT 1000""", "table")))
    return d


# --- Fleet health ---------------------------------------------------------------------------

DEVICE_LATEST = f"""SELECT last("state") AS "state", last("batt") AS "battery", last("rssi") AS "rssi",
    last("outbox") AS "outbox", last("dropped") AS "dropped", last("fw") AS "firmware", last("uptime_s") AS "uptime"
    FROM "device" WHERE {WARD} GROUP BY "ward", "device\""""
STATE_COUNT = f"""SELECT count("state") AS "{{name}}" FROM (SELECT last("state") AS "state" FROM "device"
    WHERE {WARD} GROUP BY "ward", "device") WHERE "state" = '{{state}}'"""
# Silent devices: every device seen in 7 days with the time of its last reading (A), and how
# many readings each sent in the last $silent (B). A device missing from B is silent; Grafana
# merges the rows by ward, bed and device and keeps those where B's count is empty. (InfluxQL alone cannot: an
# outer `WHERE time < now() - 5m` over a subquery narrows the inner query's range too.)
SILENT_KNOWN = f"""SELECT last("seq") AS "last seq" FROM "vitals" WHERE {WARD} AND time > now() - 7d
    GROUP BY "ward", "bed", "device\""""
SILENT_RECENT = f"""SELECT count("seq") AS "recent" FROM "vitals" WHERE {WARD} AND time > now() - $silent
    GROUP BY "ward", "bed", "device\""""


def device_series(field: str) -> str:
    return f"""SELECT last("{field}") FROM "device" WHERE {WARD} AND $timeFilter
        GROUP BY time($__interval), "device" fill(none)"""


def fleet_health() -> dash_b.Dashboard:
    d = dashboard("ww-fleet-health", "Fleet health",
                  "Bedside devices: online, battery, RSSI, outbox depth and dropped readings, firmware, "
                  "and devices silent for longer than $silent.", ["devices"], time_from="now-6h", refresh="30s")
    d.with_variable(ward_var())
    d.with_variable(dash_b.CustomVariable("silent").label("Silent for more than").values("5m,15m,1h")
                    .current(dash_m.VariableOption(selected=True, text="5m", value="5m")))
    for id_, x, name, state, colour in ((1, 0, "online", "online", GREEN), (2, 6, "offline", "offline", RED)):
        d.with_panel(stat_b.Panel().id(id_).title(f"Devices {name}").grid_pos(pos(x, 0, 6, 5)).datasource(DS)
                     .with_target(q("A", STATE_COUNT.format(name=name, state=state), "table"))
                     .color_mode(common_m.BigValueColorMode.VALUE).thresholds(thresholds((None, colour)))
                     .reduce_options(common_b.ReduceDataOptions().values(False).calcs(["lastNotNull"]).fields(""))
                     .no_value("0"))
    d.with_panel(table_b.Panel().id(3).title("Silent devices (no reading for more than $silent)")
                 .grid_pos(pos(12, 0, 12, 5)).datasource(DS)
                 .targets([q("A", SILENT_KNOWN, "table"), q("B", SILENT_RECENT, "table")])
                 .transformations([
                     transform("organize", {"excludeByName": {"Time": True}}, only_ref="B"),
                     transform("merge", {}),
                     transform("filterByValue", {"type": "include", "match": "all", "filters": [
                         {"fieldName": "recent", "config": {"id": "isNull", "options": {}}}]}),
                     transform("organize", {"excludeByName": {"recent": True},
                                            "renameByName": {"Time": "last reading"}}),
                 ])
                 .override_by_name("last reading", [prop("unit", "dateTimeFromNow")]))
    d.with_panel(table_b.Panel().id(4).title("Devices").grid_pos(pos(0, 5, 16, 10)).datasource(DS)
                 .with_target(q("A", DEVICE_LATEST, "table"))
                 # Several last() in one query: InfluxDB stamps the row with the range's start,
                 # not a report time, so the column would show a plausible wrong time.
                 .with_transformation(transform("organize", {"excludeByName": {"Time": True}}))
                 .override_by_name("state", [prop("custom.cellOptions", {"type": "color-background"}),
                                             prop("mappings", text_colours({"online": ("online", GREEN),
                                                                            "offline": ("offline", RED)}))])
                 .override_by_name("battery", [prop("unit", "percent")])
                 .override_by_name("rssi", [prop("unit", "dBm")])
                 .override_by_name("uptime", [prop("unit", "s")]))
    d.with_panel(table_b.Panel().id(5).title("Firmware versions").grid_pos(pos(16, 5, 8, 10)).datasource(DS)
                 .with_target(q("A", DEVICE_LATEST, "table"))
                 .with_transformation(transform("groupBy", {"fields": {
                     "firmware": {"aggregations": [], "operation": "groupby"},
                     "device": {"aggregations": ["count"], "operation": "aggregate"}}})))
    for id_, x, y, field, title, unit in ((6, 0, 15, "batt", "Battery", "percent"), (7, 12, 15, "rssi", "RSSI", "dBm"),
                                          (8, 0, 23, "outbox", "Outbox depth", "none"),
                                          (9, 12, 23, "dropped", "Dropped readings (total per device)", "none")):
        d.with_panel(ts_b.Panel().id(id_).title(title).grid_pos(pos(x, y, 12, 8)).datasource(DS).unit(unit)
                     .max_data_points(MAX_DATA_POINTS)
                     .with_target(q("A", device_series(field), alias="$tag_device")))
    return d


# --- Gateway health -------------------------------------------------------------------------

INSTANCE = """"instance" =~ /^$instance$/"""


def gw_series(select: str) -> str:
    return f"""SELECT {select} FROM "gateway" WHERE {INSTANCE} AND $timeFilter
        GROUP BY time($__interval), "instance" fill(none)"""


def gateway_health() -> dash_b.Dashboard:
    d = dashboard("ww-gateway-health", "Gateway health",
                  "Per gateway instance: ingest rate, rejects by reason, spool depth, store latency, ingest lag.",
                  ["gateway"], time_from="now-6h", refresh="30s")
    d.with_variable(query_var("instance", "Gateway instance", INSTANCE_VAR_QUERY)).with_variable(ward_var())
    panels = (
        # The counters are totals since the gateway started: non_negative_derivative gives a rate
        # and ignores the drop to zero at a restart.
        ("Ingest rate (readings/s)", 'non_negative_derivative(last("received"), 1s) AS "received", '
                                     'non_negative_derivative(last("stored"), 1s) AS "stored"', "reqps"),
        ("Spool depth", 'last("spool_batches") AS "spool batches", last("spool_bytes") AS "spool bytes"', "none"),
        ("Store latency (last write)", 'max("write_ms") AS "write ms"', "ms"),
        ("Ingest lag (largest ward)", 'max("ingest_lag_ms") AS "lag ms"', "ms"),
        ("Pending and broker backlog", 'last("pending") AS "pending", last("broker_stored") AS "broker stored"', "none"),
    )
    for n, (title, select, unit) in enumerate(panels):
        d.with_panel(ts_b.Panel().id(n + 1).title(title).grid_pos(pos(12 * (n % 2), 8 * (n // 2), 12, 8))
                     .datasource(DS).unit(unit).max_data_points(MAX_DATA_POINTS)
                     .with_target(q("A", gw_series(select), alias="$tag_instance $col")))
    d.with_panel(ts_b.Panel().id(6).title("Rejects by reason").grid_pos(pos(12, 16, 12, 8)).datasource(DS)
                 .max_data_points(MAX_DATA_POINTS).draw_style(common_m.GraphDrawStyle.BARS)
                 .description("Readings the gateway refused, per reason (docs/protocol.md, \"Rejection reasons\").")
                 .with_target(q("A", f"""SELECT sum("count") FROM "rejected" WHERE {WARD} AND $timeFilter
                     GROUP BY time($__interval), "reason" fill(none)""", alias="$tag_reason")))
    d.with_panel(table_b.Panel().id(7).title("Instances: last report").grid_pos(pos(0, 24, 24, 6)).datasource(DS)
                 # The latest point itself (not several last(): their row time is the range's
                 # start), so "last report" is when the instance last reported.
                 .with_target(q("A", f"""SELECT "received", "stored", "rejected", "spool_batches" AS "spool batches"
                     FROM "gateway" WHERE {INSTANCE} AND time > now() - 24h GROUP BY "instance"
                     ORDER BY time DESC LIMIT 1""", "table"))
                 .with_transformation(transform("organize", {"renameByName": {"Time": "last report"}}))
                 .override_by_name("last report", [prop("unit", "dateTimeFromNow")]))
    return d


DASHBOARDS = {
    "ward-overview": ward_overview,
    "bed-detail": bed_detail,
    "alarms": alarms_dash,
    "fleet-health": fleet_health,
    "gateway-health": gateway_health,
}


def _post_process(name: str, board: dict) -> dict:
    """What the SDK cannot express, added to the encoded dashboard."""
    if name == "bed-detail":
        # InfluxDB annotation columns are datasource-specific; the SDK's AnnotationQuery has none.
        for ann in board["annotations"]["list"]:
            if ann.get("name") == "Alarm events":
                ann.update(ALARM_ANNOTATION)
    return board


def dashboard_json(name: str) -> dict:
    board = json.loads(json.dumps(DASHBOARDS[name]().build(), cls=JSONEncoder))
    return _post_process(name, board)


# --- Alert rules ----------------------------------------------------------------------------

def _influx_model(ref: str, query: str) -> InfluxQLTarget:
    return InfluxQLTarget(ref, query, "time_series")


def _rule(uid: str, title: str, query: str, reducer: str, op: str, value: float, for_: str,
          severity: str, summary: str, no_data: str = "OK") -> alert_b.Rule:
    """A rule: A (InfluxQL) -> B reduce -> C threshold. Alert queries carry no Grafana macros and
    no ``$`` at all: file provisioning interpolates environment variables in most fields."""
    reduce = expr_b.TypeReduce().ref_id("B").expression("A").reducer(reducer).datasource(
        dash_m.DataSourceRef(type_val=EXPR_UID, uid=EXPR_UID))
    threshold = expr_b.TypeThreshold().ref_id("C").expression("B").datasource(
        dash_m.DataSourceRef(type_val=EXPR_UID, uid=EXPR_UID)).conditions([
            expr_b.ExprTypeThresholdConditions().evaluator(
                expr_b.ExprTypeThresholdConditionsEvaluator().type(op).params([value]))])
    rel = alert_m.RelativeTimeRange(from_val=600, to=0)
    return (alert_b.Rule(title).uid(uid).condition("C").for_val(for_).no_data_state(no_data)
            .exec_err_state("Error").labels({"severity": severity, "source": "grafana"})
            .annotations({"summary": summary})
            .queries([
                alert_b.Query("A").datasource_uid(DS_UID).relative_time_range(rel).model(_influx_model("A", query)),
                alert_b.Query("B").datasource_uid(EXPR_UID).relative_time_range(rel).model(reduce),
                alert_b.Query("C").datasource_uid(EXPR_UID).relative_time_range(rel).model(threshold),
            ]))


# Rule thresholds; the README lists them.
WARD_SILENT_MIN = 5
GATEWAY_SILENT_MIN = 2
OFFLINE_MANY = 3

ALERT_QUERIES = {
    # Readings per minute per ward over a day (fill(0): a silent ward keeps its series, with
    # zeros), averaged over the last 5 minutes by moving_average: 0 once a ward has been silent
    # for 5 whole minutes. A filter on time alone cannot find silence: no point, no series.
    "ww-ward-no-data": f"""SELECT moving_average(count("seq"), {WARD_SILENT_MIN}) AS "readings_per_min" FROM "vitals"
        WHERE time > now() - 24h GROUP BY time(1m), "ward" fill(0)""",
    # Self-metrics come every 10 s; none for 2 whole minutes means the instance is down.
    "ww-gateway-down": f"""SELECT moving_average(count("received"), {GATEWAY_SILENT_MIN}) AS "reports_per_min"
        FROM "gateway" WHERE time > now() - 24h GROUP BY time(1m), "instance" fill(0)""",
    "ww-gateway-spooling": """SELECT last("spool_batches") AS "spool_batches" FROM "gateway" WHERE time > now() - 5m
        GROUP BY "instance\"""",
    "ww-news2-high": """SELECT last("score") AS "score" FROM "news2" WHERE "bed" != '-' AND time > now() - 15m
        GROUP BY "ward", "bed\"""",
    "ww-news2-single3": """SELECT last("rr") AS "rr", last("spo2") AS "spo2", last("o2") AS "o2", last("sbp") AS "sbp",
        last("pulse") AS "pulse", last("acvpu") AS "acvpu", last("temp") AS "temp" FROM "news2"
        WHERE time > now() - 15m GROUP BY "ward", "bed\"""",
    "ww-devices-offline": """SELECT count("state") AS "offline" FROM (SELECT last("state") AS "state" FROM "device"
        WHERE time > now() - 30d GROUP BY "ward", "device") WHERE "state" = 'offline' GROUP BY "ward\"""",
}


def alert_rules() -> list[tuple[str, list[alert_b.Rule]]]:
    Q = {k: " ".join(v.split()) for k, v in ALERT_QUERIES.items()}
    return [
        ("ward", [
            _rule("ww-ward-no-data", "No data from a ward", Q["ww-ward-no-data"], "last", "lt", 0.5, "0s", "critical",
                  f"Ward {{{{ index $labels \"ward\" }}}}: no reading stored for {WARD_SILENT_MIN} minutes."),
            _rule("ww-news2-high", "Bed at NEWS2 high (7 or more)", Q["ww-news2-high"], "last", "gt", 6.5, "0s",
                  "critical", "Bed {{ index $labels \"ward\" }}/{{ index $labels \"bed\" }}: NEWS2 {{ $values.B }} "
                  "(high band, docs/clinical.md). The gateway raises the bed alarm; this is the ward-level copy."),
            _rule("ww-news2-single3", "Bed with a NEWS2 parameter at 3", Q["ww-news2-single3"], "last", "gt", 2.5,
                  "0s", "warning", "Bed {{ index $labels \"ward\" }}/{{ index $labels \"bed\" }}: a NEWS2 "
                  "parameter scores 3 (urgent ward-based review, docs/clinical.md)."),
            _rule("ww-devices-offline", f"{OFFLINE_MANY} or more devices offline in a ward", Q["ww-devices-offline"],
                  "last", "gt", OFFLINE_MANY - 0.5, "2m", "critical",
                  "Ward {{ index $labels \"ward\" }}: {{ $values.B }} devices offline (network or power?)."),
        ]),
        ("infrastructure", [
            _rule("ww-gateway-down", "Gateway instance down", Q["ww-gateway-down"], "last", "lt", 0.5, "0s", "critical",
                  f"Gateway {{{{ index $labels \"instance\" }}}} wrote no self-metrics for {GATEWAY_SILENT_MIN} minutes."),
            _rule("ww-gateway-spooling", "Gateway spooling to disk", Q["ww-gateway-spooling"], "last", "gt", 0, "2m",
                  "warning", "Gateway {{ index $labels \"instance\" }} holds {{ $values.B }} batches in its spool: "
                  "InfluxDB is slow or was unreachable."),
        ]),
    ]


def _file_rule(rule: alert_b.Rule) -> dict:
    """The HTTP-API shape the SDK builds -> the file-provisioning shape (group and folder are
    given by the enclosing group there)."""
    r = json.loads(json.dumps(rule.build(), cls=JSONEncoder))
    for key in ("folderUID", "orgID", "ruleGroup"):
        r.pop(key, None)
    r["isPaused"] = False
    return r


CONTACT_POINT = "wardwatch-ward-team"


def alerting_yaml() -> dict:
    contact = [
        alert_b.ContactPoint().uid("ww-email").name(CONTACT_POINT).type("email").settings({
            "addresses": "${WARDWATCH_ALERT_EMAIL}", "singleEmail": True}),
        alert_b.ContactPoint().uid("ww-webhook").name(CONTACT_POINT).type("webhook").settings({
            "url": "${WARDWATCH_ALERT_WEBHOOK_URL}", "httpMethod": "POST"}),
    ]
    receivers = []
    for c in contact:
        cp = json.loads(json.dumps(c.build(), cls=JSONEncoder))
        receivers.append({"uid": cp["uid"], "type": cp["type"], "settings": cp["settings"],
                          "disableResolveMessage": False})
    policy = json.loads(json.dumps(
        alert_b.NotificationPolicy().receiver(CONTACT_POINT).group_by(["grafana_folder", "alertname", "ward"])
        .group_wait("30s").group_interval("5m").repeat_interval("1h").build(), cls=JSONEncoder))
    return {
        "apiVersion": 1,
        "groups": [{"orgId": 1, "name": name, "folder": FOLDER, "interval": "1m",
                    "rules": [_file_rule(r) for r in rules]} for name, rules in alert_rules()],
        "contactPoints": [{"orgId": 1, "name": CONTACT_POINT, "receivers": receivers}],
        "policies": [{"orgId": 1, **policy}],
    }


# --- data source and dashboard provider -----------------------------------------------------

def datasource_yaml() -> dict:
    return {
        "apiVersion": 1,
        "datasources": [{
            "name": "WardWatch InfluxDB",
            "uid": DS_UID,
            "type": DS_TYPE,
            "access": "proxy",
            "url": "${WARDWATCH_INFLUX_URL}",
            "user": "${WARDWATCH_INFLUX_USER}",
            "jsonData": {"version": "InfluxQL", "dbName": "${WARDWATCH_INFLUX_DATABASE}", "httpMode": "GET",
                         "timeInterval": "1s"},
            "secureJsonData": {"password": "${WARDWATCH_INFLUX_PASSWORD}"},
            "editable": False,
            "isDefault": False,
        }],
    }


def provider_yaml() -> dict:
    return {
        "apiVersion": 1,
        "providers": [{
            "name": "wardwatch",
            "orgId": 1,
            "folder": FOLDER,
            "folderUid": FOLDER_UID,
            "type": "file",
            "disableDeletion": False,
            "allowUiUpdates": False,
            "updateIntervalSeconds": 30,
            "options": {"path": "${WARDWATCH_GRAFANA_DASHBOARDS}", "foldersFromFilesStructure": False},
        }],
    }


HEADER = "# Generated by `python -m dashboards.build`; edit dashboards/build.py, not this file.\n"


def _yaml(data: dict) -> str:
    return HEADER + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120)


def render() -> dict[str, str]:
    """Pure: every generated file, relative path -> text."""
    files = {
        "provisioning/datasources/wardwatch.yaml": _yaml(datasource_yaml()),
        "provisioning/dashboards/wardwatch.yaml": _yaml(provider_yaml()),
        "provisioning/alerting/wardwatch.yaml": _yaml(alerting_yaml()),
    }
    for name in DASHBOARDS:
        files[f"json/{name}.json"] = json.dumps(dashboard_json(name), indent=2, sort_keys=True) + "\n"
    return files


def write(out: Path) -> list[Path]:
    """Write ``render()`` under ``out``; returns the paths written."""
    written = []
    for rel, text in render().items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards.build", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="root of the tree (default: the dashboards folder)")
    args = parser.parse_args(argv)
    for path in write(args.out):
        print(path.relative_to(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
