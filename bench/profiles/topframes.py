"""Top frames of a py-spy raw (collapsed) profile, with the waits set apart.

``python bench/profiles/topframes.py raw.txt [N]``: ``raw.txt`` from ``throughput.py
--profile DIR`` (py-spy ``--format raw``). Samples whose innermost frame is paho's
``select`` or a ``Condition.wait`` are counted as waiting: py-spy in ``--nonblocking`` mode
samples those too. Of the rest (busy), the N frames with the most samples of their own
(self) and the functions on the most stacks (cumulative), in % of busy samples.
"""
import sys
from collections import Counter
IDLE = ("Client._loop (paho/mqtt/client.py:1667)", "Condition.wait (threading.py:331)", "Condition.wait (threading.py:327)", "Event.wait")
selfc, cum = Counter(), Counter()
total = idle = 0
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if not line: continue
    stack, _, n = line.rpartition(" ")
    n = int(n); total += n
    frames = stack.split(";")
    if frames[-1].startswith(IDLE):
        idle += n; continue
    selfc[frames[-1]] += n
    seen = set()
    for f in frames[1:]:
        name = f.split(" (")[0]
        if name not in seen:
            seen.add(name); cum[name] += n
busy = total - idle
k = int(sys.argv[2]) if len(sys.argv) > 2 else 12
print(f"samples {total}, waiting in select/Condition.wait {idle} ({100*idle/total:.0f} %), busy {busy}")
print("self (% of busy samples)")
for f, n in selfc.most_common(k): print(f"  {100*n/busy:5.1f} %  {f}")
print("cumulative, by function (% of busy samples)")
for f, n in cum.most_common(k+8): print(f"  {100*n/busy:5.1f} %  {f}")
