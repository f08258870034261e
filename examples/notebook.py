# %% [markdown]
# # emoprobe from Python: the demo set, then per-class F1 from the DataFrame
#
# Run it as a script (`python examples/notebook.py`) or cell by cell in Jupyter/VS Code.
# It needs a local Ollama with a vision model (`ollama pull qwen2.5vl:7b`); answers are
# cached, so a second run asks the server nothing.

# %%
import emoprobe

result = emoprobe.run(model="qwen2.5vl:7b")  # no dataset: the bundled 25 cartoon faces
print(f"{result.finished}/{result.total} images in {result.out}")

# %%
record = emoprobe.load_run(result.out)
frame = record.predictions  # one row per image: label, prediction, status, latency_s, …
print(frame[["label", "prediction", "status"]].head())

# %%
# per-class F1, as metrics.json has it (scikit-learn's), and the confusion as a crosstab
for label in record.labels:
    print(f"{label:>10}  F1 {record.metrics.per_class[label].f1:.3f}")
print(frame.pivot_table(index="label", columns="prediction", aggfunc="size", fill_value=0))

# %%
# one image, through the same cache, prompt and parser
with emoprobe.Probe.open("qwen2.5vl:7b") as probe:
    answer = probe.classify("examples/faces/happy/001.jpg")
    timing = "cached" if answer.cached else f"{answer.latency_s:.2f} s"
    print(answer.label, repr(answer.raw), timing)
