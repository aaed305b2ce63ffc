"""``logs.py``: the progress lines and their arithmetic (a fake clock), phases, the stderr set-up."""

from __future__ import annotations

import logging

import pytest

from iclreg.logs import LOGGER, Progress, duration, log_interval, phase, setup_logging


class Clock:
    """A clock the test moves: ``clock.now = 14.07``."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def lines(caplog):
    """The messages logged under ``iclreg`` from DEBUG up, as (level, text) pairs."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)

    def read() -> list[tuple[int, str]]:
        return [(r.levelno, r.getMessage()) for r in caplog.records if r.name.startswith(LOGGER)]

    return read


def test_a_line_holds_step_loss_rate_and_eta(clock, lines):
    with Progress(5000, interval=10, tty=False, clock=clock) as bar:
        clock.now = 14.07
        bar.set_loss(0.412345)
        bar.update(1200)  # 1200 steps in 14.07 s: 85.29 step/s; 3800 left: 44.6 s
        assert lines() == [(logging.INFO, "train: step 1200/5000 (24%), loss 0.4123, 85.3 step/s, ETA 45 s")]
        assert bar.rate == pytest.approx(1200 / 14.07)


def test_lines_come_every_interval_and_once_at_the_end(clock, lines):
    with Progress(100, interval=30, tty=False, clock=clock) as bar:
        for t in range(1, 100):
            clock.now = float(t)  # one step a second
            bar.update()
        clock.now = 100.0
        bar.update()
    texts = [text for _, text in lines()]
    assert texts == [
        "train: step 30/100 (30%), 1.0 step/s, ETA 1 min 10 s",
        "train: step 60/100 (60%), 1.0 step/s, ETA 40 s",
        "train: step 90/100 (90%), 1.0 step/s, ETA 10 s",
        "train: step 100/100 (100%), 1.0 step/s, done in 1 min 40 s",
    ]


def test_interval_zero_logs_every_update(clock, lines):
    with Progress(3, interval=0, tty=False, clock=clock) as bar:
        for t in (1.0, 2.0, 3.0):
            clock.now = t
            bar.update()
    assert [text.split(",")[0] for _, text in lines()] == ["train: step 1/3 (33%)", "train: step 2/3 (67%)",
                                                          "train: step 3/3 (100%)"]


def test_restored_steps_move_the_position_not_the_rate(clock, lines):
    bar = Progress(100, interval=0, tty=False, clock=clock)
    bar.skip(50)  # a resumed sweep: 50 steps came from a checkpoint, at once
    clock.now = 2.0
    bar.update(10)
    assert bar.rate == pytest.approx(5.0)
    assert lines()[-1][1] == "train: step 60/100 (60%), 5.0 step/s, ETA 8.0 s"
    resumed = Progress(100, initial=40, interval=0, tty=False, clock=clock)  # a resumed run
    clock.now = 4.0
    resumed.update(10)
    assert resumed.rate == pytest.approx(5.0)


def test_slow_rates_read_as_seconds_per_step_and_long_etas_in_hours(clock, lines):
    bar = Progress(10000, interval=0, tty=False, clock=clock, desc="evaluation", unit="prompt")
    clock.now = 8.0
    bar.update(4)  # 2 s per prompt, 9996 left: 19992 s
    assert lines()[-1][1] == "evaluation: prompt 4/10000 (0%), 2.0 s/prompt, ETA 5 h 33 min"


def test_close_before_the_end_says_stopped(clock, lines):
    with pytest.raises(KeyboardInterrupt):
        with Progress(100, interval=30, tty=False, clock=clock) as bar:
            clock.now = 5.0
            bar.set_loss(2.5)
            bar.update(20)
            raise KeyboardInterrupt
    assert lines() == [(logging.INFO, "train: step 20/100 (20%), loss 2.5, 4.0 step/s, stopped in 5.0 s")]


def test_disabled_and_inner_progress(clock, lines):
    with Progress(10, enabled=False, interval=0, tty=False, clock=clock) as bar:
        bar.update(10)
    assert lines() == []
    with Progress(10, interval=30, tty=False, clock=clock, leave=False) as bar:
        clock.now = 1.0
        bar.update(10)
    assert lines() == [(logging.DEBUG, "train: step 10/10 (100%), 10.0 step/s, done in 1.0 s")]


def test_a_terminal_gets_a_bar_with_the_loss_and_no_log_lines(clock, lines, capsys):
    restore = setup_logging(0)
    try:
        with Progress(50, interval=0, tty=True, clock=clock) as bar:
            bar.set_loss(0.123456)
            bar.update(50)
            logging.getLogger("iclreg.x").info("the next phase")  # the bar ended at 50: not redrawn
    finally:
        restore()
    err = capsys.readouterr().err
    assert "train" in err and "50/50" in err and "loss=0.1235" in err
    assert err.endswith("\niclreg: the next phase\n") and err.count("50/50") == 1
    assert lines() == [(logging.INFO, "the next phase")]


@pytest.mark.parametrize(("seconds", "text"), [(0.04, "0.0 s"), (3.21, "3.2 s"), (44.6, "45 s"),
                                               (725, "12 min 5 s"), (7380, "2 h 3 min")])
def test_duration(seconds, text):
    assert duration(seconds) == text


def test_phase_announces_start_and_time(clock, lines):
    with phase("figures", clock=clock):
        clock.now = 3.21
    with pytest.raises(ValueError), phase("report", level=logging.DEBUG, clock=clock):
        raise ValueError
    assert lines() == [(logging.INFO, "figures ..."), (logging.INFO, "figures done in 3.2 s"),
                       (logging.DEBUG, "report ...")]


def test_log_interval_from_the_environment(monkeypatch, caplog):
    monkeypatch.delenv("ICLREG_LOG_EVERY", raising=False)
    assert log_interval() == 30
    monkeypatch.setenv("ICLREG_LOG_EVERY", "0")
    assert log_interval() == 0
    assert Progress(10, tty=False).interval == 0
    monkeypatch.setenv("ICLREG_LOG_EVERY", "soon")
    with caplog.at_level(logging.WARNING):
        assert log_interval() == 30
    assert "ICLREG_LOG_EVERY=soon is not a number of seconds >= 0" in caplog.text


def _emit_every_level() -> None:
    ours = logging.getLogger("iclreg.some.module")
    ours.debug("a detail")
    ours.info("a phase")
    ours.warning("a warning")
    other = logging.getLogger("otherlib")
    other.info("their info")
    other.warning("their warning")


@pytest.mark.parametrize(("verbosity", "expected"), [
    (-1, ["iclreg: warning: a warning", "WARNING otherlib: their warning"]),
    (0, ["iclreg: a phase", "iclreg: warning: a warning", "WARNING otherlib: their warning"]),
])
def test_setup_logging_levels_and_lines(verbosity, expected, capsys):
    restore = setup_logging(verbosity)
    try:
        _emit_every_level()
    finally:
        restore()
    assert capsys.readouterr().err.splitlines() == expected


def test_verbose_lines_carry_time_level_and_logger(capsys):
    restore = setup_logging(1)
    try:
        _emit_every_level()
    finally:
        restore()
    err = capsys.readouterr().err.splitlines()
    assert [line.split(" ", 1)[1] for line in err] == [
        "DEBUG iclreg.some.module: a detail", "INFO iclreg.some.module: a phase",
        "WARNING iclreg.some.module: a warning", "WARNING otherlib: their warning"]
    assert all(len(line.split(" ", 1)[0]) == len("05:29:02") for line in err)


def test_setup_logging_replaces_itself_and_restores_what_it_found(capsys):
    root, ours = logging.getLogger(), logging.getLogger(LOGGER)
    handlers, level = list(root.handlers), ours.level
    restore_first = setup_logging(0)
    restore = setup_logging(0)  # a second call replaces the first's handler: one line per record
    logging.getLogger("iclreg.x").info("once")
    restore()
    restore_first()
    assert capsys.readouterr().err == "iclreg: once\n"
    assert root.handlers == handlers and ours.level == level
    logging.getLogger("iclreg.x").info("after")
    assert capsys.readouterr().err == ""


def test_heartbeat_speaks_only_for_long_work(caplog):
    import logging
    import time

    from iclreg.logs import heartbeat

    logger = logging.getLogger("iclreg.test-heartbeat")
    with caplog.at_level(logging.INFO, logger="iclreg"):
        with heartbeat("quick", logger, after=5.0):
            pass
        assert caplog.messages == []
        with heartbeat("long", logger, after=0.05, every=0.05):
            time.sleep(0.2)
    assert caplog.messages[0].startswith("long ... (") and caplog.messages[-1].startswith("long done in")
