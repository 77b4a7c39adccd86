import pytest

from attnlab.checks import check_int, is_int
from attnlab.errors import AttnlabError


def test_is_int_refuses_bools_and_floats():
    assert is_int(3) and is_int(0) and is_int(-2)
    assert not is_int(True) and not is_int(2.0) and not is_int("2") and not is_int(None)


@pytest.mark.parametrize("value", [0, -1, True, 1.0, "1", None])
def test_check_int_names_the_subject_and_the_bound(value):
    with pytest.raises(AttnlabError, match=r"^--beam must be an int >= 1 \(1 = greedy\)\. Got .* instead\.$"):
        check_int("--beam", value, hint=" (1 = greedy)")


def test_check_int_takes_a_minimum():
    check_int("k", 0, 0)
    check_int("vocab", 100, 100)
    with pytest.raises(AttnlabError, match="vocab must be an int >= 100. Got 99 instead."):
        check_int("vocab", 99, 100)
