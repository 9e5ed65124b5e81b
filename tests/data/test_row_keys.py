from array import array

from rlhf.data.row_keys import key_digest, repeated


def test_digests_tell_keys_apart_by_their_parts():
    assert key_digest("koala", "1") == key_digest("koala", "1")
    assert len({key_digest("koala", "1"), key_digest("koala1"), key_digest("koal", "a1"), key_digest("1", "koala")}) == 4
    assert 0 <= key_digest("x") < 2**64


def test_repeated_digests_are_found_in_place():
    digests = array("Q", [5, 3, 9, 3, 5, 5, 1])
    assert repeated(digests) == {3, 5}
    assert sorted(digests) == list(digests)          # sorted in place, nothing copied out
    assert repeated(array("Q", [2, 1])) == set() and repeated(array("Q")) == set()
