"""Pool the three probe rounds of docs/results/probe (1-thread configurations) and bootstrap the
int8 / fp32 CV ratio; run from the repository root with PYTHONPATH=src."""
import json, statistics as st, numpy as np
from deploybench.probe import boundary_limit, flip_rate
rounds = [json.load(open(f"docs/results/probe/{name}.json"))
          for name in ("probe", "probe-round2-t1", "probe-round3-t1")]
pooled = {}
for d in rounds:
    for r in d["runs"]:
        if r["p95_ms"] is not None and r["case"].endswith("t1"):
            pooled.setdefault(r["case"], []).append(r["p95_ms"])
rng = np.random.default_rng(0)
cv = lambda x: np.std(x, ddof=1) / np.mean(x)
for k, v in pooled.items():
    med = st.median(v)
    print(k, len(v), "mean %.1f sd %.1f cv %.3f" % (st.fmean(v), st.stdev(v), cv(v)),
          "flip@b %.2f" % flip_rate(v, boundary_limit(v)), " ".join("m%.2f=%.2f" % (m, flip_rate(v, med/(1-m))) for m in (0.05, .1, .25)), "max/med %.2f" % (max(v)/med))
for be in ("eager", "onnxruntime"):
    i8 = np.array(pooled[f"effnet lite0 {be} int8 b3 t1"]); f32 = np.array(pooled[f"effnet lite0 {be} fp32 b3 t1"])
    ratios = [cv(rng.choice(i8, len(i8))) / cv(rng.choice(f32, len(f32))) for _ in range(5000)]
    print(be, "cv ratio int8/fp32 %.2f, 95%% bootstrap [%.2f, %.2f]" % (cv(i8)/cv(f32), *np.percentile(ratios, [2.5, 97.5])))
for d in rounds:
    fc = [r["foreign_cores"] for r in d["runs"]]
    print(d["date"], "foreign cores min %.2f mean %.2f max %.2f" % (min(fc), sum(fc) / len(fc), max(fc)))
