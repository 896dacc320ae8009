import pytest

from signals_assets.reports import lifecycle as lc
from signals_assets.reports.lifecycle import InvalidTransition, ReportState, check_transition, should_promote


def test_every_status_has_transition_rules():
    assert set(lc.TRANSITIONS) == set(lc.STATUSES) | {None}


@pytest.mark.parametrize(
    "current,new",
    [
        (None, lc.POTENTIAL),
        (lc.POTENTIAL, lc.CANDIDATE),
        (lc.CANDIDATE, lc.IN_PROGRESS),
        (lc.IN_PROGRESS, lc.READY),
        (lc.IN_PROGRESS, lc.PENDING_INPUT),
        (lc.READY, lc.CANDIDATE),
        (lc.READY, lc.RESOLVED),
        (lc.FAILED, lc.POTENTIAL),
    ],
)
def test_allowed_transitions(current, new):
    assert check_transition(current, new) == new


@pytest.mark.parametrize(
    "current,new",
    [
        (lc.POTENTIAL, lc.READY),
        (lc.CANDIDATE, lc.READY),
        (lc.DELETED, lc.POTENTIAL),
        (None, lc.CANDIDATE),
        (lc.RESOLVED, lc.CANDIDATE),
    ],
)
def test_invalid_transition_names_both_states(current, new):
    with pytest.raises(InvalidTransition) as error:
        check_transition(current, new)
    assert str(current or "nothing") in str(error.value) and new in str(error.value)


def test_unknown_status_is_rejected():
    with pytest.raises(ValueError, match="status: 'open'"):
        check_transition(lc.POTENTIAL, "open")


def test_promotion_needs_weight_and_the_research_gate():
    one = ReportState("r1-0000000000000000", lc.POTENTIAL).with_signal(0.5)
    assert not should_promote(one)
    assert should_promote(one.with_signal(0.5))
    gated = ReportState("r1-0000000000000000", lc.POTENTIAL, signal_count=4, total_weight=2.0, signals_at_run=5)
    assert not should_promote(gated)
    assert should_promote(gated.with_signal(0.5))
    assert should_promote(ReportState("r", lc.POTENTIAL).with_signal(1.0))


def test_ready_reports_are_re_researched_up_to_ten_signals():
    ready = ReportState("r", lc.READY, signal_count=9, total_weight=4.5, signals_at_run=12)
    assert should_promote(ready.with_signal(0.5))
    assert not should_promote(ready.with_signal(0.5).with_signal(0.5))
    for status in (lc.CANDIDATE, lc.IN_PROGRESS, lc.PENDING_INPUT, lc.FAILED, lc.SUPPRESSED, lc.DELETED):
        assert not should_promote(ReportState("r", status, signal_count=3, total_weight=3.0))


def test_research_gate_advances_by_three():
    assert lc.research_gate(2) == 5
