"""The seeded sentence generator."""

from vocoder.data.sentences import load_grammar, make_sentence, make_sentences


def test_deterministic_and_varied():
    a = make_sentences(0, 30)
    assert a == make_sentences(0, 30)
    assert make_sentences(0, 5, start=10) == a[10:15]
    assert len(set(a)) > 25  # varied
    assert a != make_sentences(1, 30)
    assert all(s[0].isupper() and s[-1] in ".?!" for s in a)
    assert all("{" not in s for s in a)


def test_every_template_is_reachable():
    templates = load_grammar()["templates"]
    assert len(templates) >= 10
    firsts = {make_sentence(7, i).split()[0] for i in range(300)}
    assert len(firsts) > 10
