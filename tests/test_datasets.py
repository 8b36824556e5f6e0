"Tests of erret.datasets: round trips world -> writer -> loader, real-format fixtures, corrupted files, determinism, speed"
import os, json, shutil, time, hashlib
from pathlib import Path
import numpy as np
import pytest
from fastcore.test import test_fail as fails_with
import erret
from erret.core import ErretError
from erret.world import World, WorldConfig, render, object_boxes
from erret.datasets import *
from erret.datasets import _int_box, _scene_key, _tree_hashes

FIX = Path(erret.__file__).resolve().parent.parent / 'data' / 'datasets'


@pytest.fixture
def fix(tmp_path):
    "A writable copy of one fixture folder"
    def copy(name):
        dst = tmp_path / name
        shutil.copytree(FIX / name, dst)
        return dst
    return copy


def _edit_json(path, fn):
    d = json.loads(path.read_text()); fn(d); path.write_text(json.dumps(d))


# ---------------------------------------------------------------- round trips

@pytest.fixture(scope='module')
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp('world')
    info = write_world(root, 'all', n_images=30, seed=11, size=64)
    return root, info, World(WorldConfig(n_images=30, seed=11, size=64))


def test_round_trip_vg(written):
    root, info, w = written
    vg = load_vg(root / 'vg')
    assert info['vg']['n_images'] == len(vg) == 30
    assert info['vg']['n_regions'] == sum(map(len, vg.regions.values()))
    for i in range(30):
        regs = w.regions(i)
        got = vg.regions[i + 1]
        assert [r.phrase for r in got] == [r.phrase for r in regs]
        assert [r.box for r in got] == [tuple(map(float, r.box)) for r in regs]
        assert len({r.region_id for r in got}) == len(got)
        objs = vg.objects[i + 1]
        assert [o.names[0] for o in objs] == [erret.world.SHAPE_WORDS[o.shape][0] for o in w[i].objects]
        assert [o.box for o in objs] == [tuple(map(float, _int_box(b, 64))) for b in w.boxes(i)]
        assert vg.images[i].split == w.split(i) and vg.splits[i + 1] == w.split(i)
        assert (vg.images[i].width, vg.images[i].height) == (64, 64)
    a = np.asarray(vg.images[3].open()).astype(int)
    assert np.abs(a - np.asarray(w.image(3)).astype(int)).mean() < 2


def test_round_trip_coco(written):
    root, info, w = written
    coco = load_coco_captions(root / 'coco')
    assert len(coco) == 30 and info['coco']['n_captions'] == 150
    for i in range(30):
        assert coco.captions[i + 1] == w.captions(i)
        assert coco.splits[i + 1] == w.split(i)
        folder = 'train2014' if w.split(i) == 'train' else 'val2014'
        assert coco.images[[im.image_id for im in coco.images].index(i + 1)].path.parent.name == folder
    kp = load_karpathy(root / 'coco' / 'dataset_coco.json')
    assert kp.captions == coco.captions and kp.splits == coco.splits
    assert all(im.path.exists() for im in kp.images)


def test_round_trip_flickr30k(written):
    root, info, w = written
    fl = load_flickr30k_entities(root / 'flickr30k')
    assert len(fl) == 30
    for i in range(30):
        iid, sents = str(i + 1), w.entity_captions(i)
        assert fl.captions[iid] == [s.text for s in sents]
        assert fl.splits[iid] == w.split(i)
        for sr, s in zip(fl.sentences[iid], sents):
            assert sr.text == s.text
            assert [(p.text, p.first_word) for p in sr.phrases] == [(p.text, p.first_word) for p in s.phrases]
            for pr, p in zip(sr.phrases, s.phrases):
                want = [tuple(map(float, _int_box(b, 64))) for b in p.boxes]
                assert fl.boxes[iid].get(pr.chain_id, []) == want
                assert (pr.types == ('scene',)) == (p.type == 'scene')
                if p.type == 'scene': assert pr.chain_id in fl.scene[iid] and pr.chain_id in fl.nobox[iid]
        for g in fl.grounded(iid):
            b = np.array(fl.boxes[iid][g.phrase.chain_id])
            assert g.box == (b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max())
    assert sum(len(fl.grounded(str(i + 1))) for i in range(30)) < sum(len(s.phrases) for v in fl.sentences.values() for s in v)
    # several boxes for one chain, and one box under several chain names, both occur
    assert any(len(b) > 1 for v in fl.boxes.values() for b in v.values())


def test_round_trip_css(written):
    root, info, w = written
    css = load_css(root / 'css')
    wc = World(WorldConfig.css(n_images=30, seed=11, size=64))
    assert info['css']['n_images'] == 30 and len(css['train']) + len(css['test']) == 30
    for sp in ('train', 'test'):                                  # references of a split = world scenes k of that split, in order
        s = css[sp]
        by_src = {}
        for f, t, text in s.queries(): by_src.setdefault(f, []).append((t, text))
        ks = [k for k in range(30) if wc.split(k) == sp][:len(by_src)]
        assert len(ks) == len(by_src) and len(by_src) > 0
        for src, k in zip(sorted(by_src), ks):
            assert s.scene(src).objects == wc[k].objects
            assert np.array_equal(np.asarray(s.image(src)), np.asarray(render(wc[k], 64)))
            got = sorted(by_src[src])                               # targets are the images right after their reference
            assert [t for t, _ in got] == list(range(src + 1, src + 1 + len(got)))
            want = css_targets(wc, k, len(got))
            assert [text for _, text in got] == [text for _, text in want]
            assert got[0][1] == wc.css_query(k, css=True)[1]        # the first modification is the world's own
            for (t, _), (t_scene, _) in zip(got, want):
                assert _scene_key(s.objects[t]) == _scene_key([{'shape': {'square': 'rectangle'}.get(o.shape, o.shape), 'color': o.colour,
                                                                'size': o.size, 'pos': (o.y, o.x)} for o in t_scene.objects])
        assert max(len(v) for v in by_src.values()) >= 3              # one reference, several targets
    for sp in ('train', 'test'):
        s = css[sp]
        for i in range(len(s)):
            for j in range(len(s)):
                assert (s.labels[i] == s.labels[j]) == (_scene_key(s.objects[i]) == _scene_key(s.objects[j]))
    raw = np.load(root / 'css' / CSS_FILE, allow_pickle=True).item()
    assert set(raw) == {'train', 'test'} and set(raw['train']) == {'objects_img', 'mods', 'labels'}
    assert set(raw['train']['mods'][0]) == {'from', 'to', 'to_str'}
    assert {o['shape'] for os_ in raw['train']['objects_img'] for o in os_} <= {'rectangle', 'circle', 'triangle'}


# ---------------------------------------------------------------- fixtures in the real formats

def test_vg_fixtures_key_variants():
    a, b = load_vg(FIX / 'vg'), load_vg(FIX / 'vg_v10')
    assert [im.image_id for im in a.images] == [im.image_id for im in b.images] == [1, 2]
    assert a.images[1].path.parent.name == 'VG_100K_2'
    for i in (1, 2):
        assert [(r.region_id, r.phrase, r.box) for r in a.regions[i]] == [(r.region_id, r.phrase, r.box) for r in b.regions[i]]
    assert a.regions[1][1].box == (0., 0., 63., 47.)
    assert a.objects[2][0].box == (3., 5., 9., 14.) and b.objects is None
    assert load_vg(FIX / 'vg', objects=False).objects is None
    assert len(load_vg(FIX / 'vg', max_images=1)) == 1


def test_coco_fixture_more_than_five_captions():
    c = load_coco_captions(FIX / 'coco')
    assert [len(c.captions[i]) for i in (391895, 522418, 184613)] == [5, 5, 5]
    full = load_coco_captions(FIX / 'coco', max_captions=None)
    assert len(full.captions[391895]) == 7 and full.captions[391895][:5] == c.captions[391895]
    assert c.splits[522418] == 'restval' and c.ids('train') == [184613]
    only_val = load_coco_captions(FIX / 'coco', splits='val2014', karpathy=False)
    assert only_val.splits == {391895: 'val2014', 522418: 'val2014'}
    assert load_coco_captions(FIX / 'coco', max_captions=2).captions[522418] == c.captions[522418][:2]


def test_flickr_fixture_multibox_and_nobox():
    fl = load_flickr30k_entities(FIX / 'flickr30k')
    assert fl.boxes['1000092795']['370'] == [(0., 50., 120., 300.), (200., 40., 330., 280.)]
    g = fl.grounded('1000092795')
    chains = [p.phrase.chain_id for p in g]
    assert '372' not in chains and '373' not in chains and '0' not in chains
    assert g[0].box == (0., 40., 330., 300.)
    man = [p for p in g if p.phrase.chain_id == '371']
    assert man[0].phrase.types == ('people', 'other') and man[0].box == (200., 40., 330., 280.)
    assert [im.image_id for im in load_flickr30k_entities(FIX / 'flickr30k', split='val').images] == ['10002456']


def test_fashion_and_mit_states_fixtures():
    fa = load_fashion200k(FIX / 'fashion200k')
    assert len(fa) == 5 and {it.category for it in fa.items} == {'dress', 'skirt', 'top'}
    assert [it.split for it in load_fashion200k(FIX / 'fashion200k', split='train').items] == ['train'] * 3
    ms = load_mit_states(FIX / 'mit_states')
    assert len(ms) == 4 and ms.nouns == ['bottle', 'building'] and all(it.adj != 'adj' for it in ms.items)


# ---------------------------------------------------------------- corrupted files: one clear error

def test_vg_corrupted(fix):
    root = fix('vg')
    (root / 'region_descriptions.json').rename(root / 'x.json')
    fails_with(lambda: load_vg(root), contains='region_descriptions.json: file not found')
    (root / 'x.json').rename(root / 'region_descriptions.json')
    _edit_json(root / 'region_descriptions.json', lambda d: d[0]['regions'][1].pop('phrase'))
    fails_with(lambda: load_vg(root), contains="region_descriptions.json: image 1, region 12: missing field 'phrase'")
    _edit_json(root / 'region_descriptions.json', lambda d: d[0]['regions'][1].update(phrase='ok', width=80))
    fails_with(lambda: load_vg(root, on_bad_box='raise'), contains='image 1, region 12: box (x1, y1, x2, y2) = (0, 0, 80, 47) lies outside the 64×48 image')
    vg = load_vg(root)                                                     # default: repaired and counted
    assert vg.regions[1][1].box == (0., 0., 64., 47.) and vg.repairs['clipped_region_boxes'] == 1
    assert len(load_vg(root, on_bad_box='drop').regions[1]) == 1
    assert load_vg(root, on_bad_box='clip').regions[1][1].box == (0., 0., 64., 47.)
    _edit_json(root / 'region_descriptions.json', lambda d: d[0]['regions'][1].update(width='wide'))
    fails_with(lambda: load_vg(root), contains="region 12: field 'width' has 'wide'; expected int or float")
    _edit_json(root / 'region_descriptions.json', lambda d: d[0]['regions'][1].update(width=63))
    _edit_json(root / 'image_data.json', lambda d: d[1].pop('image_id'))
    fails_with(lambda: load_vg(root), contains="image_data.json: record 1: missing field 'image_id' / 'id'")
    _edit_json(root / 'image_data.json', lambda d: d[1].update(image_id=2))
    (root / 'VG_100K_2' / '2.jpg').unlink()
    vg = load_vg(root)                                                     # a missing file: the image is dropped, and counted
    assert [im.image_id for im in vg.images] == [1] and 2 not in vg.regions and vg.repairs['missing_images'] == 1
    (root / 'VG_100K' / '1.jpg').unlink()
    fails_with(lambda: load_vg(root), contains='none of its 2 images could be found')
    (root / 'objects.json').write_text('[{"image_id": 1, "objects": [}')
    fails_with(lambda: load_vg(root, check_images=False), contains='objects.json: not valid JSON')
    fails_with(lambda: load_vg(root / 'nope'), contains='no such directory')


def test_coco_corrupted(fix):
    root = fix('coco')
    f = root / 'annotations' / 'captions_val2014.json'
    _edit_json(f, lambda d: d['annotations'][3].pop('caption'))
    fails_with(lambda: load_coco_captions(root), contains="captions_val2014.json: annotations[3] (image 391895): missing field 'caption'")
    _edit_json(f, lambda d: d['annotations'][3].update(caption='fine', image_id=42))
    fails_with(lambda: load_coco_captions(root), contains='annotations[3]: image_id 42 is not in this file')
    _edit_json(f, lambda d: (d['annotations'][3].update(image_id=391895), d['images'][1].pop('file_name')))
    fails_with(lambda: load_coco_captions(root), contains="captions_val2014.json: images[1] (id 522418): missing field 'file_name'")
    _edit_json(f, lambda d: d['images'][1].update(file_name='missing.jpg'))
    coco = load_coco_captions(root)                                        # a missing file: dropped with its captions, counted
    assert 522418 not in coco.captions and coco.repairs['missing_images'] == 1
    _edit_json(f, lambda d: d['images'][1].update(file_name='COCO_val2014_000000522418.jpg'))
    _edit_json(root / 'dataset_coco.json', lambda d: d['images'][0].update(split='dev'))
    fails_with(lambda: load_coco_captions(root), contains="dataset_coco.json: images[0]: split 'dev'")
    fails_with(lambda: load_coco_captions(root, splits='test2015'), contains='captions_test2015.json: file not found')
    shutil.rmtree(root / 'annotations')
    fails_with(lambda: load_coco_captions(root), contains='no captions_*.json file found')


def test_flickr_corrupted(fix):
    root = fix('flickr30k')
    s = root / 'Sentences' / '10002456.txt'
    lines = s.read_text().split('\n'); lines[2] = lines[2].replace('dog]', 'dog'); s.write_text('\n'.join(lines))
    fails_with(lambda: load_flickr30k_entities(root), contains="10002456.txt, line 3: entity phrase [/EN#4561/... (word 0) is not closed before '[/EN#4562/scene'")
    lines[2] = lines[2].replace('dog', 'dog]'); s.write_text('\n'.join(lines))
    x = root / 'Annotations' / '1000092795.xml'
    good = x.read_text()
    x.write_text(good.replace('<xmax>330</xmax>', '<xmax>530</xmax>'))
    fails_with(lambda: load_flickr30k_entities(root, on_bad_box='raise'), contains='1000092795.xml: object #1 (chains 370, 371): <bndbox> xmin=201 ymin=41 xmax=530 ymax=280 lies outside the 500×333 image')
    fl = load_flickr30k_entities(root)                                     # default: clipped to the image, counted
    assert fl.boxes['1000092795']['371'][0] == (200., 40., 500., 280.) and fl.repairs['clipped_boxes'] == 1
    x.write_text(good.replace('<ymin>51</ymin>', '<ymin>5l</ymin>'))
    fails_with(lambda: load_flickr30k_entities(root), contains="object #0 (chains 370): <ymin> is '5l'; expected an integer")
    x.write_text(good.replace('</annotation>', ''))
    fails_with(lambda: load_flickr30k_entities(root), contains='1000092795.xml: not valid XML')
    x.write_text(good)
    t = root / 'results_20130124.token'
    t.write_text(t.read_text().replace('10002456.jpg#1\t', '10002456.jpg 1 ', 1))
    fails_with(lambda: load_flickr30k_entities(root), contains="results_20130124.token: line 7 is malformed")
    t.unlink()
    (root / 'Annotations' / '1000268201.xml').unlink()
    fl = load_flickr30k_entities(root)                                     # listed in a split file, annotation gone: dropped, counted
    assert '1000268201' not in fl.boxes and fl.repairs['missing_annotations'] == 1
    assert len(load_flickr30k_entities(root, split='train')) == 1       # captions fall back to the sentences
    for f in ('train.txt', 'val.txt', 'test.txt'): (root / f).unlink()     # no split files: the Sentences/ listing is the truth
    fails_with(lambda: load_flickr30k_entities(root), contains='1000268201.xml: file not found (annotation of image 1000268201')



def test_css_corrupted(tmp_path):
    d = np.load(FIX / 'css' / CSS_FILE, allow_pickle=True).item()
    def save(data):
        np.save(tmp_path / CSS_FILE, np.array(data, dtype=object), allow_pickle=True)
    d['test']['objects_img'][1][0]['pos'] = (1.5, 0.5); save(d)
    fails_with(lambda: load_css(tmp_path), contains="split 'test', objects_img[1][0]: pos (1.5, 0.5) must be (y, x) in [0, 1]")
    d['test']['objects_img'][1][0]['pos'] = (0.5, 0.5); d['train']['mods'][0]['to'] = [7]; save(d)
    fails_with(lambda: load_css(tmp_path), contains="split 'train', mods[0]: image id 7 outside the split's 2 images")
    d['train']['mods'][0]['to'] = [1]; del d['train']['objects_img'][0][0]['color']; save(d)
    fails_with(lambda: load_css(tmp_path), contains="objects_img[0][0]: missing field 'color'")
    (tmp_path / CSS_FILE).write_bytes(b'not numpy')
    fails_with(lambda: load_css(tmp_path), contains='cannot read the CSS numpy file')
    fails_with(lambda: load_css(tmp_path / 'none'), contains='css_toy_dataset_novel2_small.dup.npy: file not found')


def test_fashion_and_mit_corrupted(fix):
    fa = fix('fashion200k')
    f = fa / 'labels' / 'top_train_detect_all.txt'
    f.write_text(f.read_text() + 'women/tops/x.jpeg\twhite shirt\n')
    fails_with(lambda: load_fashion200k(fa), contains='top_train_detect_all.txt: line 2 has 2 tab-separated fields')
    f.write_text('women/tops/blouses/47811312/47811312_0.jpeg\thigh\twhite blouse\n')
    fails_with(lambda: load_fashion200k(fa), contains="line 1: confidence 'high' is not a number")
    f.write_text('women/tops/nothing.jpeg\t0.5\twhite blouse\n')
    f2 = load_fashion200k(fa)                                              # a missing file: dropped, counted
    assert len(f2) == 4 and f2.repairs['missing_images'] == 1
    ms = fix('mit_states')
    (ms / 'images' / 'very old house').mkdir()
    fails_with(lambda: load_mit_states(ms), contains="folder name 'very old house' is not '<adjective> <noun>'")
    (ms / 'images' / 'very old house').rmdir(); (ms / 'images' / 'wet bottle').mkdir()
    fails_with(lambda: load_mit_states(ms), contains="adj 'wet' is not in")


# ---------------------------------------------------------------- determinism, atomicity, caching, speed

def test_same_seed_byte_identical(tmp_path):
    write_world(tmp_path / 'a', 'all', n_images=24, seed=3)
    write_world(tmp_path / 'b', 'all', n_images=24, seed=3)
    ha, hb = _tree_hashes(tmp_path / 'a'), _tree_hashes(tmp_path / 'b')
    assert ha == hb and len(ha) > 100
    write_world(tmp_path / 'c', 'all', n_images=24, seed=4)
    hc = _tree_hashes(tmp_path / 'c')
    assert hc['vg/region_descriptions.json'] != ha['vg/region_descriptions.json']
    assert hc['css/' + CSS_FILE] != ha['css/' + CSS_FILE]


def test_single_format_writes_into_out_dir(tmp_path):
    info = write_world(tmp_path, 'flickr30k', n_images=5)
    assert list(info) == ['flickr30k'] and (tmp_path / 'Sentences').is_dir() and not (tmp_path / 'vg').exists()
    with pytest.raises(ErretError, match="unknown format 'voc'"): write_world(tmp_path, 'voc')
    with pytest.raises(ErretError, match='n_images must be positive'): write_world(tmp_path, 'vg', n_images=0)


def test_failed_write_leaves_no_partial_files(tmp_path, monkeypatch):
    import erret.datasets as D
    calls = {'n': 0}
    real = D.describe_regions
    def flaky(*a, **k):
        calls['n'] += 1
        if calls['n'] == 3: raise RuntimeError('disk on fire')
        return real(*a, **k)
    monkeypatch.setattr(D, 'describe_regions', flaky)
    with pytest.raises(RuntimeError, match='disk on fire'): write_world(tmp_path, 'vg', n_images=6)
    assert not [p for p in tmp_path.rglob('*') if p.name.endswith('.tmp')]
    assert not (tmp_path / 'region_descriptions.json').exists()


def test_world_dataset_cache(tmp_path, monkeypatch):
    monkeypatch.setenv('ERRET_DATA', str(tmp_path))
    p = world_dataset('vg', n_images=8, seed=2)
    assert p.is_relative_to(tmp_path / 'worlds') and len(load_vg(p)) == 8
    t = (p / 'region_descriptions.json').stat().st_mtime_ns
    assert world_dataset('vg', n_images=8, seed=2) == p and (p / 'region_descriptions.json').stat().st_mtime_ns == t
    (p / '.erret_complete.json').unlink()                                     # an interrupted build is redone
    assert world_dataset('vg', n_images=8, seed=2) == p and (p / '.erret_complete.json').exists()
    assert world_dataset('vg', n_images=8, seed=2, n_regions=3) != p
    assert max(map(len, load_vg(world_dataset('vg', n_images=8, seed=2, n_regions=3)).regions.values())) == 3
    with pytest.raises(ErretError, match='unknown format'): world_dataset('imagenet')


@pytest.mark.skipif(bool(os.environ.get('ERRET_SKIP_TIMING')), reason='ERRET_SKIP_TIMING is set')
def test_write_world_2000_images_under_a_minute(tmp_path):
    t = time.time()
    info = write_world(tmp_path, 'all', n_images=2000, seed=0, size=64)
    dt = time.time() - t
    assert info['vg']['n_images'] == 2000 and info['css']['n_images'] == 2000
    assert dt < 60, f'{dt:.1f} s'


# --- COCO instances (object layouts, Text2Scene) ---

def test_coco_instances_round_trip(tmp_path):
    w = World(n_images=20, seed=4)
    info = write_coco(tmp_path, w)
    ins = {s: load_coco_instances(tmp_path, f'{s}2014') for s in ('train', 'val')}
    assert info['n_objects'] == sum(len(w[i].objects) for i in range(20)) == sum(len(v) for x in ins.values() for v in x.objects.values())
    raw = json.loads((tmp_path / 'annotations' / 'instances_train2014.json').read_text())
    a = raw['annotations'][0]
    assert set(a) >= {'id', 'image_id', 'category_id', 'bbox', 'area', 'iscrowd', 'segmentation', 'attributes'}
    assert len(a['bbox']) == 4 and a['area'] > 0 and a['iscrowd'] == 0
    assert {c['name'] for c in raw['categories']} == set(w.cfg.shapes)
    for i in range(20):
        x = ins['train' if w.split(i) == 'train' else 'val']
        objs = x.objects[i + 1]
        assert [x.categories[o.category_id] for o in objs] == [o.shape for o in w[i].objects]
        assert [o.attributes['colour'] for o in objs] == [o.colour for o in w[i].objects]
        np.testing.assert_allclose(np.array([o.box for o in objs]), w.boxes(i), atol=0.01)
        for o, ob in zip(objs, w[i].objects):                  # the polygon area is close to the box area for compact shapes
            bw, bh = o.box[2] - o.box[0], o.box[3] - o.box[1]
            assert 0.2 * bw * bh < o.area <= bw * bh + 1e-6


def test_coco_instances_fixture_and_errors(tmp_path):
    ins = load_coco_instances(FIX / 'coco', 'val')
    assert len(ins) == 2 and ins.categories[4] == 'motorcycle'
    assert all(o.attributes == {} for v in ins.objects.values() for o in v)           # real COCO: no attributes
    assert [o.iscrowd for o in ins.objects[522418]] == [1, 0]
    d = json.loads((FIX / 'coco' / 'annotations' / 'instances_val2014.json').read_text())
    (tmp_path / 'annotations').mkdir()
    d['annotations'][1]['bbox'] = [3.0, 15.0, 60.0, 14.9]                              # outside the 40x30 image
    (tmp_path / 'annotations' / 'instances_val2014.json').write_text(json.dumps(d))
    fails_with(lambda: load_coco_instances(tmp_path, 'val2014', on_bad_box='raise'), contains='lies outside the 40×30 image')
    assert load_coco_instances(tmp_path, 'val2014').repairs['clipped_object_boxes'] == 1
    assert len(load_coco_instances(tmp_path, 'val2014', on_bad_box='drop').objects[391895]) == 2
    del d['annotations'][0]['bbox']
    (tmp_path / 'annotations' / 'instances_val2014.json').write_text(json.dumps(d))
    fails_with(lambda: load_coco_instances(tmp_path, 'val2014'), contains="(id 156): missing field 'bbox'")


# ---------------------------------------------------------------- Revisited Oxford / GLDv2 (RRT)

def test_roxford_round_trip_and_gnd(tmp_path):
    import pickle
    from erret.world import difficulty
    w = World(WorldConfig(n_images=40, seed=4))
    info = write_roxford(tmp_path, w, n_views=4)
    rox, gld = load_roxford(tmp_path), load_gldv2(tmp_path)
    with open(tmp_path / 'gnd_roxford5k.pkl', 'rb') as f: raw = pickle.load(f)
    assert sorted(raw) == ['gnd', 'imlist', 'qimlist'] and all(sorted(g) == ['bbx', 'easy', 'hard', 'junk'] for g in raw['gnd'])
    tests = [k for k in range(40) if w.split(k) == 'test']; vals = [k for k in range(40) if w.split(k) == 'val']
    assert rox.qimlist == [f'scene{k:05d}_q' for k in tests] and len(rox) == 4 * (len(tests) + len(vals)) == info['n_database']
    for q, k in enumerate(tests):
        g = rox.gnd[q]
        assert sorted(g['easy'] + g['hard'] + g['junk']) == [rox.imlist.index(f'scene{k:05d}_v{j}') for j in range(4)]
        for j, v in enumerate(w.views(k, 4)): assert rox.imlist.index(f'scene{k:05d}_v{j}') in g[difficulty(v.change)]
        x1, y1, x2, y2 = g['bbx']; b = object_boxes(w.scene(k), 64)
        assert x1 <= b[:, 0].min() and y1 <= b[:, 1].min() and x2 >= b[:, 2].max() and y2 >= b[:, 3].max()
        assert rox.query_image(q, crop=True).size == (round(x2) - round(x1), round(y2) - round(y1))
    assert set(gld.labels) == {k for k in range(40) if w.split(k) == 'train'} and all(p.exists() for p in map(gld.path, range(len(gld))))
    assert (tmp_path / 'train.csv').read_text().splitlines()[0] == 'id,url,landmark_id'
    pos, junk = rox.protocol('medium')
    assert pos[0] == sorted(rox.gnd[0]['easy'] + rox.gnd[0]['hard']) and junk[0] == sorted(rox.gnd[0]['junk'])
    write_roxford(tmp_path / 'again', w, n_views=4)
    assert _tree_hashes(tmp_path / 'again') == {p: h for p, h in _tree_hashes(tmp_path).items() if not p.startswith('again/')}   # byte-identical


def test_roxford_via_write_world_and_corrupted(tmp_path):
    import pickle
    info = write_world(tmp_path, 'roxford', n_images=20, seed=1)
    assert list(info) == ['roxford'] and (tmp_path / 'gnd_roxford5k.pkl').exists() and (tmp_path / 'jpg').is_dir()
    assert 'roxford' in FORMATS and 'roxford' not in write_world(tmp_path / 'all', 'all', n_images=4)
    with pytest.raises(ErretError, match='gnd_rparis6k.pkl: file not found'): load_roxford(tmp_path, 'rparis6k')
    raw = pickle.loads((tmp_path / 'gnd_roxford5k.pkl').read_bytes())
    bad = {**raw, 'gnd': raw['gnd'][:-1]}
    (tmp_path / 'gnd_roxford5k.pkl').write_bytes(pickle.dumps(bad))
    with pytest.raises(ErretError, match="'gnd' entries for"): load_roxford(tmp_path)
    raw['gnd'][0]['bbx'] = [5, 5, 1, 1]
    (tmp_path / 'gnd_roxford5k.pkl').write_bytes(pickle.dumps(raw))
    with pytest.raises(ErretError, match='is not a box'): load_roxford(tmp_path)
    raw['gnd'][0]['bbx'] = [0, 0, 5, 5]; (tmp_path / 'gnd_roxford5k.pkl').write_bytes(pickle.dumps(raw))
    (tmp_path / 'jpg' / f"{raw['imlist'][0]}.jpg").unlink()
    rox = load_roxford(tmp_path)                                           # a missing database image: dropped, gnd re-indexed
    assert rox.repairs['missing_images'] == 1 and rox.imlist == raw['imlist'][1:]
    assert all(i < len(rox.imlist) for g in rox.gnd for k in ('easy', 'hard', 'junk') for i in g[k])
    assert sorted(i + 1 for g in rox.gnd for k in ('easy', 'hard', 'junk') for i in g[k]) == sorted(i for g in raw['gnd'] for k in ('easy', 'hard', 'junk') for i in g[k] if i != 0)
    (tmp_path / 'train.csv').write_text('image,landmark\n')
    with pytest.raises(ErretError, match="lacks the columns 'id' and 'landmark_id'"): load_gldv2(tmp_path)
