import pytest

from gateway import lineproto
from gateway.contract import Reading, Status


def reading(**kw):
    base = dict(v=1, dev="bed-01", seq=5, ts=1000, tq=1, hr=72, spo2=97, temp=36.8, pi=2.5, sqi=0.9,
                probe="ok", sim=True, batt=80, rssi=-60)
    return Reading(**{**base, **kw})


def test_vitals_line_has_schema_tags_and_typed_fields():
    line = lineproto.vitals(reading(), "w1", "07", 1_000_000_000)
    assert line == (
        'vitals,bed=07,device=bed-01,ward=w1 seq=5i,sqi=0.9,probe="ok",tq=1i,sim=true,'
        "hr=72i,spo2=97i,temp=36.8,pi=2.5,batt=80i,rssi=-60i 1000000000"
    )


def test_nulls_are_omitted_not_written_as_zero():
    line = lineproto.vitals(reading(hr=None, spo2=None, temp=None, pi=None, batt=None, rssi=None, probe="off"),
                            "w1", "07", 1)
    assert line == 'vitals,bed=07,device=bed-01,ward=w1 seq=5i,sqi=0.9,probe="off",tq=1i,sim=true 1'


@pytest.mark.parametrize("raw,escaped", [("bed 7", r"bed\ 7"), ("a,b", r"a\,b"), ("x=y", r"x\=y"), ("07", "07")])
def test_tag_escaping(raw, escaped):
    assert lineproto.tag(raw) == escaped


def test_string_field_escaping():
    assert lineproto.string_field('say "hi"\\') == r'"say \"hi\"\\"'


def test_rejected_excerpt_is_short_and_printable():
    line = lineproto.rejected("not_json", "w1", "bed-01", b'\x00\x01{"a":"' + b"x" * 200, 5)
    assert line.startswith("rejected,reason=not_json,ward=w1 count=1i,")
    excerpt = line.split('excerpt="')[1].rsplit('" ', 1)[0]
    assert len(excerpt.replace(r"\"", "\"")) == 64 and "\x00" not in excerpt


def test_device_line_from_last_will():
    assert lineproto.device(Status(v=1, dev="bed-01", state="offline"), "w1", 9) == (
        'device,device=bed-01,ward=w1 state="offline" 9'
    )


def test_a_status_with_the_links_refusals_is_stored():
    s = Status(v=1, dev="bed-01", state="online", fw="0.1.0", board="esp32", uptime_s=5, outbox=0, dropped=0,
               refused=2, refusal="not authorised")
    line = lineproto.device(s, "w1", 7)
    assert line == ('device,device=bed-01,ward=w1 state="online",outbox=0i,dropped=0i,refused=2i,uptime_s=5i,'
                    'fw="0.1.0",refusal="not authorised" 7')
