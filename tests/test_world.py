"Tests of erret.world: scenes, rendering, language, splits, queries, views"
import math, collections, itertools
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from erret.core import ErretError
from erret.world import *

WORD2SHAPE = {w: s for s, ws in SHAPE_WORDS.items() for w0 in ws for w in (w0, plural(w0))}
WORD2COLOUR = {w: c for c, ws in COLOUR_WORDS.items() for w in ws}
WORD2SIZE = {w: s for s, ws in SIZE_WORDS.items() for w in ws}


def _words(phrase):
    "Phrase words with the two-word shape 'plus sign(s)' joined"
    return [w.replace('_', ' ') for w in phrase.replace('plus signs', 'plus_signs').replace('plus sign', 'plus_sign').split()]


def test_world_is_deterministic_per_index():
    a, b = World(n_images=50, seed=7), World(n_images=5000, seed=7)
    for i in (0, 13, 49):
        assert a[i] == b[i]
        assert a.split(i) == b.split(i)
        assert a.regions(i) == b.regions(i) and a.captions(i) == b.captions(i)
        assert np.array_equal(np.asarray(a.image(i)), np.asarray(b.image(i)))
    assert World(n_images=50, seed=8)[13] != a[13]


def test_scene_constraints():
    rng = np.random.default_rng(0)
    for _ in range(300):
        s = make_scene(rng)
        assert 1 <= len(s) <= 8 and s.background in BACKGROUNDS
        b = object_boxes(s, 1.0)
        assert (b >= 0).all() and (b <= 1).all()
        for o, p in itertools.combinations(s.objects, 2):
            assert math.dist((o.x, o.y), (p.x, p.y)) >= SHAPE_EXTENT[o.shape] * o.radius + SHAPE_EXTENT[p.shape] * p.radius
    with pytest.raises(ErretError, match='no \\(shape, colour\\) pair'):
        make_scene(rng, allowed=set())


@pytest.mark.parametrize('shape', SHAPES)
def test_boxes_enclose_rendered_pixels(shape):
    for rot in (-12.0, 0.0, 9.0):
        for size in ('small', 'large'):
            o = Obj(shape, 'blue', size, 0.5, 0.5, rot)
            a = np.asarray(render(Scene((o,)), 128)).astype(int)
            ys, xs = np.nonzero(np.abs(a - 255).sum(-1) > 30)
            x1, y1, x2, y2 = object_box(o, 128)
            assert xs.min() >= x1 - 1 and xs.max() + 1 <= x2 + 1 and ys.min() >= y1 - 1 and ys.max() + 1 <= y2 + 1
            # and the box is tight: the drawn shape reaches near each side
            assert xs.min() <= x1 + 2 and xs.max() + 1 >= x2 - 2 and ys.min() <= y1 + 2 and ys.max() + 1 >= y2 - 2


@pytest.mark.parametrize('px', [32, 64, 128, 224])
def test_render_sizes_and_colours(px):
    s = Scene((Obj('square', 'green', 'large', 0.3, 0.3), Obj('circle', 'yellow', 'large', 0.7, 0.7)), 'mist')
    a = np.asarray(render(s, px))
    assert a.shape == (px, px, 3)
    assert tuple(a[int(0.3 * px), int(0.3 * px)]) == COLOURS['green']
    assert tuple(a[int(0.7 * px), int(0.7 * px)]) == COLOURS['yellow']
    assert tuple(a[1, px - 2]) == BACKGROUNDS['mist']


def _check_region_truth(scene, r, size):
    objs = [scene.objects[i] for i in r.object_ids]
    ws = _words(r.phrase)
    assert {WORD2SHAPE[w] for w in ws if w in WORD2SHAPE} == {o.shape for o in objs}
    assert {WORD2COLOUR[w] for w in ws if w in WORD2COLOUR} <= {o.colour for o in objs}
    assert {WORD2SIZE[w] for w in ws if w in WORD2SIZE} <= {o.size for o in objs}
    x1, y1, x2, y2 = r.box
    assert 0 <= x1 < x2 <= size and 0 <= y1 < y2 <= size
    for b in object_boxes(scene, size)[list(r.object_ids)]:
        assert b[0] >= x1 - 1 and b[1] >= y1 - 1 and b[2] <= x2 + 1 and b[3] <= y2 + 1


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([64, 128]))
def test_region_descriptions_are_true(seed, size):
    rng = np.random.default_rng(seed)
    s = make_scene(rng)
    regs = describe_regions(s, size, rng, n=10)
    assert len({r.phrase for r in regs}) == len(regs) >= 1
    for r in regs:
        assert 1 <= len(r.object_ids) <= 3 and r.focus in FOCI
        _check_region_truth(s, r, size)


def test_relation_phrases_hold():
    "In 'A REL B' phrases about two objects of different shapes, REL holds between them"
    rng = np.random.default_rng(1)
    rel_words = sorted(((w, k) for k, ws in REL_WORDS.items() for w in ws), key=lambda x: -len(x[0]))
    n = 0
    for _ in range(300):
        s = make_scene(rng)
        for r in describe_regions(s, 64, rng, n=10):
            if r.focus != 'relation' or len(r.object_ids) != 2: continue
            a, b = (s.objects[i] for i in r.object_ids)
            if a.shape == b.shape: continue
            for w, rel in rel_words:
                if f' {w} ' in f' {r.phrase} ':
                    left, right = r.phrase.split(f' {w} ', 1)
                    first = next(WORD2SHAPE[x] for x in _words(left) if x in WORD2SHAPE)
                    x, y = (a, b) if first == a.shape else (b, a)
                    assert rel in relations(x, y), (r.phrase, x, y)
                    n += 1
                    break
    assert n > 100


def test_relations_brute_force():
    rng = np.random.default_rng(2)
    for _ in range(2000):
        a = Obj('circle', 'red', 'small', *rng.uniform(0, 1, 2)); b = Obj('star', 'red', 'small', *rng.uniform(0, 1, 2))
        rs = relations(a, b)
        if 'left of' in rs: assert a.x < b.x
        if 'right of' in rs: assert a.x > b.x
        if 'above' in rs: assert a.y < b.y
        if 'below' in rs: assert a.y > b.y
        if 'next to' in rs: assert math.dist((a.x, a.y), (b.x, b.y)) < 0.33
        assert rs and rs[0] != 'next to'


def test_region_statistics_for_err():
    "Most regions mention >= 2 objects, areas mostly in [0.1, 0.9] of the image, phrases rarely repeat"
    w = World(n_images=400, seed=0)
    regs = [(i, r) for i in range(len(w)) for r in w.regions(i)]
    multi = [(i, r) for i, r in regs if len(r.object_ids) >= 2]
    assert len(multi) / len(regs) > 0.7
    area = np.array([(r.box[2] - r.box[0]) * (r.box[3] - r.box[1]) for _, r in regs]) / 64 ** 2
    assert np.mean((area >= 0.1) & (area <= 0.9)) > 0.9
    counts = collections.Counter(r.phrase for _, r in multi)
    assert max(counts.values()) <= 10                      # no phrase shared by many regions
    assert sum(c * (c - 1) // 2 for c in counts.values()) >= 5   # but exact repeats across images exist
    assert {r.focus for _, r in multi} == set(FOCI)


ERR_QUICK = dict(n_images=3500, n_regions=20, split_fracs=(0.6, 0.1, 0.3))


def test_region_context_off_is_the_old_world():
    "region_context = 0 (the default) gives byte-identical regions and VG files to the world before the option (commit 8102cd1)"
    import hashlib, json
    w = World(WorldConfig(**ERR_QUICK))
    rows = [[list(r.box), r.phrase, list(r.object_ids), r.focus] for i in range(100) for r in w.regions(i)]
    assert len(rows) == 1987
    assert hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16] == '8dd4f70e6f87ecf6'    # measured with the old world.py
    explicit = World(WorldConfig(**ERR_QUICK, region_context=0.0))
    assert all(w.regions(i) == explicit.regions(i) for i in range(30))
    rng = np.random.default_rng(11)
    for k in range(30):
        s = make_scene(rng)
        assert describe_regions(s, 64, np.random.default_rng(k), n=12) == describe_regions(s, 64, np.random.default_rng(k), n=12, p_context=0.0)


def test_region_context_vg_file_unchanged(tmp_path):
    "write_vg's region_descriptions.json at the default region_context is the old file byte for byte"
    import hashlib
    datasets = pytest.importorskip('erret.datasets')
    datasets.write_vg(tmp_path, World(WorldConfig(**{**ERR_QUICK, 'n_images': 30})))
    assert hashlib.sha256((tmp_path / 'region_descriptions.json').read_bytes()).hexdigest()[:16] == 'b9c2d04dd7e492e9'


def test_region_context_adds_unnamed_objects():
    "At region_context = 1 every box of a scene with an undescribed object holds one; phrases still name 1-3 objects"
    rng = np.random.default_rng(4)
    for k in range(60):
        s = make_scene(rng); ob = object_boxes(s, 64)
        for r in describe_regions(s, 64, np.random.default_rng(k), n=10, p_context=1.0):
            x1, y1, x2, y2 = r.box
            assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64 and 1 <= len(r.object_ids) <= 3
            inside = [j for j in range(len(s)) if ob[j, 0] >= x1 - 1 and ob[j, 2] <= x2 + 1 and ob[j, 1] >= y1 - 1 and ob[j, 3] <= y2 + 1]
            assert set(r.object_ids) <= set(inside)
            if len(s) > len(r.object_ids): assert set(inside) - set(r.object_ids)
    stats = [region_stats(World(WorldConfig(**ERR_QUICK, region_context=c)), 150) for c in (0.0, 0.5, 1.0)]
    un = [s['all']['boxes with an unnamed object'] for s in stats]
    named = [s['all']['named fraction'] for s in stats]
    assert un[0] < 25 < un[1] - 20 < un[2] - 50, un          # about 17, 51, 85 %
    assert named[0] > 0.88 and named[0] > named[1] > named[2] and named[2] < 0.68, named
    assert max(abs(s['all']['named per box'] - stats[0]['all']['named per box']) for s in stats) < 0.1   # phrases name as many objects as before
    for s in stats: assert set(s) == {'all', *FOCI}

def test_err_pairs_and_sets():
    "Pairs with BLEU-2 > 0.7 and METEOR > 0.6 exist in numbers; their connected sets stay small"
    text = pytest.importorskip('erret.text')
    w = World(n_images=500, seed=0)
    regs = [(i, r.phrase) for i in range(len(w)) for r in w.regions(i) if len(r.object_ids) >= 2]
    by_phrase = collections.defaultdict(list)
    for k, (i, p) in enumerate(regs): by_phrase[p].append(k)
    U = list(by_phrase)
    stop = {'a', 'an', 'the', 'and', 'with', 'of', 'to', 'on', 'in', 'is'}
    keys = collections.defaultdict(set)
    for u, p in enumerate(U):
        c = sorted(x for x in p.split() if x not in stop)
        keys[tuple(c)].add(u)
        for j in range(len(c)): keys[tuple(c[:j] + c[j + 1:])].add(u)
    cand = {(a, b) for v in keys.values() for a, b in itertools.combinations(sorted(v), 2)}
    ok = lambda a, b: text.bleu([a.split()], b.split()) > 0.7 and text.meteor([a.split()], b.split(), backend='exact+stem') > 0.6
    edges = [(a, b) for a, b in cand if ok(U[a], U[b])] + [(a, a) for a in range(len(U))]
    parent = list(range(len(regs)))
    def find(x):
        while parent[x] != x: parent[x] = parent[parent[x]]; x = parent[x]
        return x
    pairs = 0
    for a, b in edges:
        for x in by_phrase[U[a]]:
            for y in by_phrase[U[b]]:
                if (a != b or x < y) and regs[x][0] != regs[y][0]:
                    pairs += 1; parent[find(x)] = find(y)
    sizes = [c for c in collections.Counter(find(x) for x in range(len(regs))).values() if c >= 2]
    assert pairs >= 150, pairs
    assert np.median(sizes) <= 3 and max(sizes) <= 60, (np.median(sizes), max(sizes))


def test_captions_and_entities():
    rng = np.random.default_rng(3)
    for _ in range(100):
        s = make_scene(rng)
        ents = entity_captions(s, 64, rng, n=5)
        assert len(ents) == 5
        boxes = object_boxes(s, 64)
        for sent in ents:
            ws = sent.text.split()
            for p in sent.phrases:
                assert ' '.join(ws[p.first_word:p.first_word + len(p.text.split())]) == p.text
                if p.type == 'scene': assert p.boxes == () and p.object_ids == ()
                else:
                    assert np.allclose(np.array(p.boxes), boxes[list(p.object_ids)])
                    named = {WORD2SHAPE[w] for w in _words(p.text) if w in WORD2SHAPE}
                    assert named <= {s.objects[i].shape for i in p.object_ids} or p.text.split()[-1].rstrip('s') in ('shape', 'object')
        if len(s) >= 3:
            assert len({i for sent in ents for p in sent.phrases for i in p.object_ids}) >= 2
    s = make_scene(np.random.default_rng(4), 5)
    assert captions(s, np.random.default_rng(0), 7) == [x.text for x in entity_captions(s, 64, np.random.default_rng(0), 7)]


def test_compositional_splits():
    w = World(n_images=400, seed=1)
    assert w.novel_pairs and w.train_only_pairs and not (w.novel_pairs & w.train_only_pairs)
    seen = {'train': set(), 'other': set()}
    for i in range(len(w)):
        sp = w.split(i); ps = {o.pair for o in w[i].objects}
        seen['train' if sp == 'train' else 'other'] |= ps
        if sp != 'train': assert ps & w.novel_pairs
    assert not seen['train'] & w.novel_pairs
    assert not seen['other'] & w.train_only_pairs
    assert seen['other'] & w.novel_pairs
    fr = collections.Counter(w.split(i) for i in range(len(w)))
    assert 0.7 < fr['train'] / len(w) < 0.9


@pytest.mark.parametrize('css', [True, False])
def test_css_modify(css):
    rng = np.random.default_rng(5)
    kinds = collections.Counter()
    for _ in range(300):
        kw = dict(shapes=CSS_SHAPES, colours=CSS_COLOURS, sizes=CSS_SIZES) if css else {}
        s = make_scene(rng, int(rng.integers(1, 6)), grid=css, textures=('solid',), **kw)
        t, text, mod = css_modify(s, rng, css=css, **kw)
        kinds[mod['type']] += 1
        if mod['type'] == 'add':
            assert len(t) == len(s) + 1 and t.objects[:-1] == s.objects and t.objects[-1].cell == mod['cell']
            assert mod['cell'] in text
            if css: assert text == f"add {mod['size']} {mod['colour']} {'rectangle' if mod['shape'] == 'square' else mod['shape']} to {mod['cell']}"
        elif mod['type'] == 'remove':
            assert len(t) == len(s) - 1 and s.objects[mod['object']] not in t.objects or len(set(s.objects)) < len(s)
        else:
            assert mod['type'] == 'change'
            o, n = s.objects[mod['object']], t.objects[mod['object']]
            assert getattr(n, mod['attribute']) == mod['value'] != getattr(o, mod['attribute'])
            assert mod['value'] in text
        if css: assert 'square' not in text and text.split()[0] in ('add', 'remove', 'make')
    assert set(kinds) == {'add', 'remove', 'change'}


def test_drilldown_and_views():
    w = World(n_images=30, seed=2)
    for i in range(30):
        t = w.drilldown(i)
        assert len(t) == 10
        a = [(r.box[2] - r.box[0]) * (r.box[3] - r.box[1]) for r in t]
        assert a == sorted(a, reverse=True)
        vs = w.views(i, n=6)
        ch = np.array([v.change for v in vs])
        assert ((ch >= 0) & (ch <= 1)).all()
        for v in vs: assert len(v.kept) + v.n_distractors == len(v.scene)
    s = w[0]
    assert instance_view(s, np.random.default_rng(0), strength=0).change == pytest.approx(0)
    weak = np.mean([instance_view(s, np.random.default_rng(k), strength=0.1).change for k in range(30)])
    strong = np.mean([instance_view(s, np.random.default_rng(k), strength=1.0).change for k in range(30)])
    assert weak < strong
    assert [difficulty(c) for c in (0.0, 0.5, 1.0)] == ['easy', 'hard', 'junk']


def test_config_and_errors():
    assert WorldConfig.smoke().n_images < WorldConfig.quick().n_images < WorldConfig.full().n_images
    c = WorldConfig.css()
    assert c.shapes == CSS_SHAPES and c.grid and c.max_rotation == 0
    with pytest.raises(ErretError, match='split_fracs'): World(split_fracs=(0.5, 0.1, 0.1))
    with pytest.raises(IndexError, match='outside'): World(n_images=3)[3]
    with pytest.raises(ErretError, match='unknown split'): World(n_images=3).indices('dev')
    with pytest.raises(ErretError, match='unknown grid cell'): cell_centre('center')


def test_generation_speed():
    "Scenes, images and language of 500 images in well under 10 s (the 2,000-image writer budget is 60 s)"
    import time
    w = World(n_images=500, seed=0); t = time.time()
    for i in range(len(w)):
        s = w[i]; render(s, 64); describe_regions(s, 64, w.rng(i, 'regions'), 10); entity_captions(s, 64, w.rng(i, 'captions'), 5)
    assert time.time() - t < 10
