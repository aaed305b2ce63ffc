"""``iclreg score`` end to end: a run, a sweep (rows per member and the seed mean), a Garg et al.
checkpoint, ``score A B``, ``--json``, ``--plot``, suite files and bad input (one line, exit 2,
nothing written)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from tests.models.test_garg_checkpoint import hand_state, save, write_run_config
from tests.train.test_durability import one_line_error

from iclreg.analysis.score_report import score_text
from iclreg.analysis.score_suite import STANDARD_NAME, Base, load_suite, parse_suite
from iclreg.cli import main
from iclreg.errors import UsageError
from iclreg.score_targets import Target, default_samples, pairs, score_targets

TINY = """\
task: gaussian:d=2,n=5,noise_std=0.2
model: gpt2:layers=1,width=8,heads=1,max_n=10
train: {steps: 2, batch: 4, seed: 0}
eval: {samples: 8, estimators: [ols]}
run: {checkpoint_every: 2, log_every: 1, figures: false}
"""
SAMPLES = ["--samples", "16"]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A workspace with a run, a second run, a sweep over two seeds and a Garg checkpoint."""
    root = tmp_path_factory.mktemp("score")
    (root / "tiny.yaml").write_text(TINY)
    (root / "linear.yaml").write_text(TINY.replace("gpt2:layers=1,width=8,heads=1,max_n=10",
                                                   "softmax_attention:heads=1"))
    assert main(["-q", "train", str(root / "tiny.yaml"), "--out", str(root / "run")]) == 0
    assert main(["-q", "train", str(root / "linear.yaml"), "--out", str(root / "other")]) == 0
    sweep = ["--sweep", "train.seed=0,1", "--out", str(root / "sweep")]
    assert main(["-q", "train", str(root / "tiny.yaml"), *sweep]) == 0
    for seed in ("seed0", "seed1"):  # a directory of runs, as a reproduction keeps them
        shutil.copytree(root / "sweep" / f"train.seed={seed[-1]}", root / "group" / seed)
    (root / "empty").mkdir()
    garg = root / "garg"
    save(garg, hand_state(d=4, width=8, layers=1, max_n=9, seed=0))
    write_run_config(garg, d=4, width=8, layers=1, heads=1, max_n=9)
    return root


def tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def run_json(capsys, *argv: str) -> dict:
    assert main(["score", *argv, *SAMPLES, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_score_json_has_compare_shape_and_every_capability(work, capsys):
    out = run_json(capsys, str(work / "run"))
    assert out["suite"] == STANDARD_NAME and out["samples"] == 16 and out["seed"] == 0
    assert out["base"] == {"d": 2, "n": 5, "w_std": 1.0, "noise_std": 0.2}
    names = [c.name for c in load_suite("standard").capabilities]
    assert list(out["capabilities"]) == names
    rows = out["results"]["run"]
    assert not rows["sparse-3"]["applicable"]  # s = 3 > d = 2
    row = rows["long-2x"]
    assert row["applicable"] and len(row["mse"]) == 10 and len(row["ci95"]) == 10
    assert row["mse_at_2train_n"] == row["mse"][9] and row["mse_at_train_n"] == row["mse"][4]
    for key in ("excess", "normalised", "icl_regression_score"):
        low, high = row[f"{key}_ci95"]
        assert low <= row[key] <= high
    info = out["capabilities"]["isotropic"]
    assert info["exact"] and info["k"] == list(range(5)) and len(info["reference_mse"]) == 5


def test_score_prints_a_table_and_writes_a_figure(work, capsys, tmp_path):
    plot = tmp_path / "score.png"
    assert main(["score", str(work / "garg" / "state.pt"), *SAMPLES, "--plot", str(plot)]) == 0
    text = capsys.readouterr().out
    assert plot.stat().st_size > 1000
    assert "suite standard-v2" in text and "not applicable: gpt2: the prompt has n=18 pairs" in text
    assert "bayes (exact Bayes)" in text and "sparse_bayes (exact Bayes)" in text
    assert "not Bayes" not in text and "DIVERGES" not in text


def test_a_sweep_scores_every_member_and_the_seed_mean(work, capsys):
    out = run_json(capsys, str(work / "sweep"))
    assert set(out["results"]) == {"train.seed=0", "train.seed=1"}
    (group, rows), = out["seed_means"].items()
    mean = rows["isotropic"]
    members = [out["results"][m]["isotropic"]["normalised"] for m in ("train.seed=0", "train.seed=1")]
    assert mean["members"] == 2 and mean["normalised"] == pytest.approx(sum(members) / 2)
    assert mean["normalised_ci95"][0] <= mean["normalised"] <= mean["normalised_ci95"][1]


def test_a_directory_of_runs_is_scored_like_a_sweep(work, capsys):
    out = run_json(capsys, str(work / "group"))
    sweep = run_json(capsys, str(work / "sweep"))
    assert set(out["results"]) == {"seed0", "seed1"}
    assert out["results"]["seed1"]["isotropic"] == sweep["results"]["train.seed=1"]["isotropic"]
    assert list(out["seed_means"]) == ["all (mean of seeds)"]


def test_the_default_sample_count_keeps_large_models_within_a_minute():
    suite = load_suite("standard")

    def target(params: int) -> Target:
        model = torch.nn.Linear(params, 1, bias=False)
        return Target("t", {"m": model}, Base(20, 41), "run")

    assert default_samples([target(10_000)], suite) == 512
    assert default_samples([target(9_500_000)], suite) == 64  # Garg et al.'s standard GPT-2
    assert default_samples([target(100_000_000)], suite) == 64


def test_a_garg_checkpoint_is_scored_at_its_training_length(work, capsys):
    out = run_json(capsys, str(work / "garg" / "state.pt"))
    assert out["base"] == {"d": 4, "n": 9, "w_std": 1.0, "noise_std": 0.0}  # n: the curriculum's end
    rows = out["results"]["garg"]
    assert rows["isotropic"]["applicable"] and rows["sparse-3"]["applicable"]
    assert not rows["long-2x"]["applicable"] and "max_n=9" in rows["long-2x"]["reason"]
    assert run_json(capsys, str(work / "garg"))["results"]["garg"]["isotropic"] == rows["isotropic"]


def test_score_a_b_is_paired_capability_by_capability(work, capsys):
    out = run_json(capsys, str(work / "run"), str(work / "other"))
    (diff,) = out["differences"]
    assert (diff["a"], diff["b"]) == ("run", "other")
    row = diff["results"]["isotropic"]
    a, b = (out["results"][m]["isotropic"]["excess"] for m in ("run", "other"))
    assert row["excess_difference"] == pytest.approx(a - b)
    low, high = row["excess_difference_ci95"]
    assert row["significant"] == (not low <= 0 <= high)
    same = run_json(capsys, str(work / "run"), str(work / "run"))["differences"][0]["results"]["isotropic"]
    assert same["excess_difference"] == 0 and not same["significant"]


def test_a_suite_file(work, capsys, tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text("suite: mine-v1\ncapabilities:\n  - {name: loud, noise: 2.0}\n"
                     "  - {name: rough, task: 'gaussian:cov=toeplitz,rho=0.9', length: 2,"
                     " reference: ridge:lam=1}\n")
    out = run_json(capsys, str(work / "run"), "--suite", str(suite))
    assert out["suite"] == "mine-v1" and list(out["capabilities"]) == ["loud", "rough"]
    assert out["capabilities"]["loud"]["task"]["noise_std"] == pytest.approx(2.0 * 2**0.5)
    rough = out["capabilities"]["rough"]
    assert rough["n"] == 10 and not rough["exact"] and rough["task"]["rho"] == 0.9


@pytest.mark.parametrize("text, fragment", [
    ("suite: [x\n", "malformed YAML"),
    ("- a\n", "must be a mapping"),
    ("capabilities: [{name: a}]\n", "needs 'suite: NAME'"),
    ("suite: s\ncapabilities: []\n", "non-empty list"),
    ("suite: s\ncapabilities: [{name: a}, {name: a}]\n", "names capability 'a' twice"),
    ("suite: s\ncapabilities: [{name: a, colour: red}]\n", "unknown key 'colour'"),
    ("suite: s\ncapabilities: [{name: a, task: nosuch}]\n", "unknown task 'nosuch'"),
    ("suite: s\ncapabilities: [{name: a, reference: nosuch}]\n", "unknown estimator 'nosuch'"),
    ("suite: s\ncapabilities: [{name: a, length: 0}]\n", "length must be an integer"),
    ("suite: s\ncapabilities: [{name: a, noise: -1}]\n", "noise must be >= 0"),
    ("suite: s\ncapabilities: [{name: a, mean: .nan}]\n", "mean must be a finite number"),
    ("suite: s\ncapabilities: [{name: 'a b'}]\n", "needs a name of letters"),
])
def test_a_bad_suite_file_is_one_line(text, fragment):
    with pytest.raises(UsageError, match=fragment):
        parse_suite(text, "'s.yaml'")


@pytest.mark.parametrize("argv, fragment", [
    (["nothere"], "'nothere' does not exist"),
    (["{run}", "{run}", "{run}"], "give one target"),
    (["{root}/empty"], "is not a run directory"),
    (["{root}/tiny.yaml"], "cannot read checkpoint"),
    (["{run}", "--suite", "nosuch"], "nor an existing suite file"),
    (["{run}", "--suite", "{root}/tiny.yaml"], "must be a mapping with the keys 'suite'"),
    (["{run}", "--samples", "1"], "--samples must lie in [2"),
    (["{run}", "--seed", "-1"], "--seed must be an integer"),
    (["{run}", "--plot", "{root}/out.txt"], ".txt"),
    (["{run}", "--plot", "{root}/missing/out.png"], "missing"),
    (["{run}", "{garg}/state.pt"], "d=2 with one of d=4"),
])
def test_bad_input_is_one_line_and_writes_nothing(work, capsys, argv, fragment):
    before = tree(work)
    args = [a.format(root=work, run=work / "run", sweep=work / "sweep", garg=work / "garg") for a in argv]
    assert main(["score", *SAMPLES, *args]) == 2
    one_line_error(capsys, fragment)
    assert tree(work) == before


def test_score_a_b_compares_seed_means_paired_on_the_prompts(work, capsys):
    """A sweep over the seed against a run: the seed-mean row minus the run, on the same prompts;
    two seed sweeps of the same members: a difference of exactly 0 with an across-seed interval."""
    out = run_json(capsys, str(work / "sweep"), str(work / "run"))
    (diff,) = out["differences"]
    assert diff["a"] == "all (mean of seeds)" and diff["a_members"] == ["train.seed=0", "train.seed=1"]
    assert diff["b_members"] == ["run"]
    row = diff["results"]["isotropic"]
    members = [out["results"][m]["isotropic"]["excess"] for m in diff["a_members"]]
    run = out["results"]["run"]["isotropic"]["excess"]
    assert row["excess_difference"] == pytest.approx(sum(members) / 2 - run)
    assert row["members"] == [2, 1] and "excess_difference_seeds_ci95" not in row
    same = run_json(capsys, str(work / "sweep"), str(work / "group"))
    (diff,) = same["differences"]
    assert diff["b_members"] == ["seed0", "seed1"]
    row = diff["results"]["isotropic"]
    assert row["excess_difference"] == pytest.approx(0, abs=1e-12) and not row["significant"]
    low, high = row["excess_difference_seeds_ci95"]
    assert low < 0 < high
    assert len(same["seed_means"]) == 2  # one per target


def test_score_a_b_pairs_units_of_the_same_name_or_refuses():
    a = {"H=1 (mean of seeds)": ["x"], "H=2 (mean of seeds)": ["y", "z"]}
    assert pairs(a, {"H=2 (mean of seeds)": ["u", "v"], "H=4": ["w"]}, ["A", "B"]) == [
        ("H=2 (mean of seeds)", "H=2 (mean of seeds)")]
    assert pairs({"run": ["run"]}, {"other": ["other"]}, ["A", "B"]) == [("run", "other")]
    with pytest.raises(UsageError, match="'A' and 'B' have no member or seed group of the same name"):
        pairs(a, {"lr=0.1": ["p"], "lr=0.2": ["q"]}, ["A", "B"])


class _Scaled(torch.nn.Module):
    """Predicts c y; c = 1e200 diverges: its squared error overflows float64 to inf."""

    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = c

    def forward(self, x, y):
        return self.c * y


def _refuse(constant: str):
    raise ValueError(f"not strict JSON: {constant}")


def test_a_diverging_model_gives_strict_json_with_null_and_a_flag():
    suite = parse_suite("suite: s\ncapabilities: [{name: isotropic}, {name: long, length: 2}]\n", "s")
    target = Target("div", {"div": _Scaled(1e200)}, Base(2, 5, 1.0, 0.2), "run")
    result = score_targets([target], suite, 16, 0)
    text = json.dumps(result)
    parsed = json.loads(text, parse_constant=_refuse)
    row = parsed["results"]["div"]["isotropic"]
    assert row["applicable"] and row["diverges"] is True
    assert row["excess"] is None and row["normalised"] is None and row["mse"][1] is None
    assert parsed["capabilities"]["isotropic"]["reference_mse"][0] is not None
    assert "DIVERGES (not finite)" in score_text(result) and "inf [inf, inf]" in score_text(result)
    fine = score_targets([Target("z", {"z": _Scaled(0.0)}, Base(2, 5), "run")], suite, 16, 0)
    assert fine["results"]["z"]["isotropic"]["diverges"] is False


def test_standard_v1_is_unchanged_and_v2_differs_only_in_the_sparse_reference():
    v1, v2 = load_suite("standard-v1"), load_suite("standard-v2")
    assert load_suite("standard") == v2 and v1.name == "standard-v1"
    names = ["isotropic", "noise-low", "noise-high", "toeplitz", "cond-100", "sparse-3", "long-2x",
             "shifted-mean"]
    assert [c.name for c in v1.capabilities] == names == [c.name for c in v2.capabilities]
    for old, new in zip(v1.capabilities, v2.capabilities, strict=True):
        sparse = old.name == "sparse-3" and (old.reference, new.reference) == ("bayes", "sparse_bayes")
        assert old == new or sparse
        assert new.exact()
    assert not v1.capabilities[5].exact()
