"""Bad input: a one-line error naming the problem, exit status 2, no traceback, no output file."""

from __future__ import annotations

import pytest

from iclreg.cli import main

BAD = [
    (["compare", "--task", "nosuchtask"], "unknown task 'nosuchtask'"),
    (["compare", "--task", "gaussian", "--estimator", "nosuch"], "unknown estimator 'nosuch'"),
    (["compare", "--task", "gaussian:dd=3"], "unknown key 'dd'"),
    (["compare", "--task", "gaussian:d=0"], "d must be at least 1"),
    (["compare", "--task", "gaussian:d=-4"], "d must be at least 1"),
    (["compare", "--task", "gaussian:d=2.5"], "d must be an integer"),
    (["compare", "--task", "gaussian:d=abc"], "d must be an integer"),
    (["compare", "--task", "gaussian:n=0"], "n must be at least 1"),
    (["compare", "--task", "gaussian:noise_std=-1"], "noise_std must be >= 0"),
    (["compare", "--task", "gaussian:w_std=-0.1"], "w_std must be >= 0"),
    (["compare", "--task", "gaussian:cov=toeplitz,rho=1.5"], "rho must lie in (-1, 1)"),
    (["compare", "--task", "gaussian:cov=toeplitz,rho=-1"], "rho must lie in (-1, 1)"),
    (["compare", "--task", "gaussian:cov=banana"], "cov must be one of"),
    (["compare", "--task", "gaussian:cov=rotated,cond=0.5"], "cond must be >= 1"),
    (["compare", "--task", "gaussian:d=3,cov=spectrum"], "needs spectrum"),
    (["compare", "--task", "gaussian:d=2,cov=spectrum,spectrum=[1,-1]"], "must be positive"),
    (["compare", "--task", "gaussian:d=3,w_mean=[1,2]"], "w_mean must be one number or a list"),
    (["compare", "--task", "sparse:d=3,s=5"], "s must lie in [1, d=3]"),
    (["compare", "--task", "local:r=0"], "r must be positive"),
    (["compare", "--task", "multitask:d=4,subsets=[[0,9]]"], "outside 0..3"),
    (["compare", "--task", "gaussian:d"], "is not key=value"),
    (["compare", "--task", "gaussian:d=3,d=4"], "given twice"),
    (["compare", "--task", "gaussian:"], "gives no key=value"),
    (["compare", "--task", "gaussian:w_mean=[1,2"], "unbalanced brackets"),
    (["compare", "--task", ""], "empty SPEC"),
    (["compare", "--task", "gaussian", "--estimator", "ridge:lam=-1"], "lam must be >= 0"),
    (["compare", "--task", "gaussian", "--estimator", "ridge:lam=big"], "lam must be a finite number"),
    (["compare", "--task", "gaussian", "--estimator", "gd:steps=-1"], "steps must be >= 0"),
    (["compare", "--task", "gaussian", "--estimator", "gd:lr=0"], "lr must be positive"),
    (["compare", "--task", "gaussian", "--estimator", "gd:mean=maybe"], "mean must be true/false"),
    (["compare", "--task", "gaussian", "--estimator", "knn:k=0"], "k must be at least 1"),
    (["compare", "--task", "gaussian", "--estimator", "newton:scale=max"], "scale must be one of"),
    (["compare", "--task", "gaussian", "--estimator", "kernel:omega=[1,2],mu=[1]"], "one value per head"),
    (["compare", "--task", "gaussian", "--estimator", "pgd:precond=foo"], "precond must be"),
    (["compare", "--task", "gaussian:d=2", "--estimator", "pgd:precond=[1,2,3]"], "needs d=2 numbers"),
    (["compare", "--task", "gaussian", "--estimator", "ols", "--estimator", "ols"], "given twice"),
    (["compare", "--task", "gaussian", "--samples", "1"], "samples must be at least 2"),
    (["compare", "--task", "gaussian", "--samples", "many"], "invalid int value"),
    (["compare", "--task", "gaussian", "--device", "tpu"], "device"),
    (["compare", "--task", "gaussian", "--dtype", "float16"], "invalid choice"),
    (["compare"], "required: --task"),
    (["nosuchcommand"], "invalid choice"),
]


def exit_status(argv: list[str]) -> int:
    """main's return value, or the status of the SystemExit argparse raises."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_gives_one_line_and_status_2(argv, message, capsys, tmp_path):
    plot = tmp_path / "out.png"
    if argv[:1] == ["compare"] and len(argv) > 1:
        argv = [*argv, "--plot", str(plot)]
    status = exit_status(argv)
    err = capsys.readouterr().err
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert message in lines[0], lines[0]
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("plot", "message"),
    [("missing_dir/curve.png", "does not exist"), ("curve.txt", "ending in .png")],
)
def test_bad_plot_path_is_rejected_before_any_work(plot, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status = main(["compare", "--task", "gaussian:d=2,n=3", "--samples", "10", "--plot", plot])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and message in err[0]
    assert list(tmp_path.iterdir()) == []
