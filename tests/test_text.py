"Tests for erret.text: tokeniser, train-only Vocab, padding/packing, BLEU and METEOR against nltk."
import csv, json
from pathlib import Path
import pytest, torch
from hypothesis import given, settings, strategies as st
from nltk.translate.bleu_score import sentence_bleu, corpus_bleu as nltk_corpus_bleu, SmoothingFunction
from nltk.translate.meteor_score import meteor_score
from erret.core import ErretError
from erret.text import (SPECIALS, PAD_IDX, UNK_IDX, SOS_IDX, EOS_IDX, tokenize, Vocab, pad_batch, numericalize,
                        length_mask, pack, unpack, sort_by_length, bleu, corpus_bleu, meteor, corpus_meteor,
                        meteor_backend, meteor_align)

DATA = Path(__file__).resolve().parent.parent / 'data' / 'text'
SMOOTH = SmoothingFunction().method1


class NoSynonyms:
    def synsets(self, *a, **k): return []


def read_captions():
    with open(DATA / 'captions.tsv', encoding='utf-8') as f:
        rows = list(csv.DictReader(f, delimiter='\t'))
    return {s: [r['caption'] for r in rows if r['split'] == s] for s in ('train', 'val', 'test')}


def test_vocab_from_train_only():
    caps = read_captions()
    v = Vocab.build(caps['train'])
    assert v.itos[:4] == list(SPECIALS)
    assert (v['<pad>'], v['<unk>'], v['<sos>'], v['<eos>']) == (PAD_IDX, UNK_IDX, SOS_IDX, EOS_IDX)
    for w in ('purple', 'cone', 'yellow', 'torus'):      # val/test-only words
        assert w not in v and v[w] == UNK_IDX
    assert v.itos[4] == 'a' and v.counts['red'] == 3
    ids = v.encode(caps['test'][0], sos=True, eos=True)
    assert ids[0] == SOS_IDX and ids[-1] == EOS_IDX and UNK_IDX in ids
    assert v.decode(v.encode(caps['train'][0])) == ' '.join(tokenize(caps['train'][0]))


def test_vocab_min_count_and_roundtrip(tmp_path):
    v = Vocab.build(read_captions()['train'], min_count=2)
    assert all(c >= 2 for c in v.counts.values())
    v.save(tmp_path / 'v.json')
    assert Vocab.load(tmp_path / 'v.json').itos == v.itos
    (tmp_path / 'bad.json').write_text(json.dumps({'words': []}))
    with pytest.raises(ErretError, match='bad.json'): Vocab.load(tmp_path / 'bad.json')


def test_pad_and_pack_roundtrip():
    v = Vocab.build(read_captions()['train'])
    tok, lens = numericalize(read_captions()['train'], v, sos=True, eos=True)
    assert tok.dtype == torch.long and tok.shape == (4, int(lens.max()))
    assert (tok[~length_mask(lens)] == PAD_IDX).all()
    assert (tok[:, 0] == SOS_IDX).all() and (tok[torch.arange(4), lens - 1] == EOS_IDX).all()
    x = torch.randn(4, tok.shape[1], 3)
    y, l2 = unpack(pack(x, lens), total_length=tok.shape[1])
    m = length_mask(lens)[..., None]
    assert torch.equal(l2, lens) and torch.equal(y * m, x * m) and (y[~m.expand_as(y)] == 0).all()
    order, inv = sort_by_length(lens)
    assert (lens[order][:-1] >= lens[order][1:]).all() and torch.equal(x[order][inv], x)


words = st.sampled_from('a the red blue cube cubes sphere spheres run running runs left of Red'.split())
phrase = st.lists(words, min_size=0, max_size=8)
refs = st.lists(st.lists(words, min_size=1, max_size=8), min_size=1, max_size=3)


@settings(max_examples=300, deadline=None)
@given(refs, phrase, st.integers(1, 4))
def test_bleu_matches_nltk(rs, hyp, n):
    assert bleu(rs, hyp, n=n) == pytest.approx(sentence_bleu(rs, hyp, weights=(1 / n,) * n, smoothing_function=SMOOTH), abs=1e-12)


@settings(max_examples=300, deadline=None)
@given(refs, phrase)
def test_meteor_exact_stem_matches_nltk(rs, hyp):
    assert meteor(rs, hyp, backend='exact+stem') == pytest.approx(meteor_score(rs, hyp, wordnet=NoSynonyms()), abs=1e-12)


def test_corpus_metrics():
    rs = [[['a', 'red', 'cube']], [['the', 'blue', 'sphere'], ['a', 'sphere']]]
    hs = [['a', 'red', 'cubes'], ['sphere']]
    assert corpus_bleu(rs, hs) == pytest.approx(nltk_corpus_bleu(rs, hs, weights=(0.5, 0.5), smoothing_function=SMOOTH))
    assert corpus_meteor(rs, hs, backend='exact+stem') == pytest.approx(
        sum(meteor_score(r, h, wordnet=NoSynonyms()) for r, h in zip(rs, hs)) / 2)
    assert meteor_align(['a', 'red', 'cubes'], ['a', 'red', 'cube']) == [(0, 0), (1, 1), (2, 2)]


def test_metric_errors():
    with pytest.raises(ErretError, match='list of token lists'): bleu('a red cube', ['a'])
    with pytest.raises(ErretError, match='list of token lists'): meteor(['a', 'cube'], ['a'])
    with pytest.raises(ErretError, match='unknown backend'): meteor([['a']], ['a'], backend='x')
    assert meteor_backend() in ('wordnet', 'exact+stem')
    if meteor_backend() == 'exact+stem':
        with pytest.raises(ErretError, match='wordnet'): meteor([['a']], ['a'], backend='wordnet')
