"Two-branch networks on Flickr30K Entities files with real-data quirks: the shared image path (letterbox + frames), repairs counted, boxes mapped."
import json, shutil
import xml.etree.ElementTree as ET
import numpy as np
import pytest
import torch
from PIL import Image
from erret.core import ErretError
from erret.datasets import load_flickr30k_entities, read_images, write_world
from erret.two_branch import TwoBranchConfig, phrase_boxes, content_boxes, _build, _features, proposal_config, load_two_branch, phrase_localization, CCABaseline, phrase_text

UNCACHED = ('erret.two_branch',)                                   # tests/conftest.py: throw-away folders are not cached
pytestmark = pytest.mark.usefixtures('one_thread')   # tests/conftest.py

SPLITS = (0.5, 0.1, 0.4)                             # the smoke preset's world split


def test_reproduce_on_quirky_flickr30k(quirky, tmp_path):
    from erret.two_branch import reproduce
    root = quirky('flickr30k', n_images=64, split_fracs=SPLITS)
    q = json.loads((root / 'erret_quirks.json').read_text())
    logs = []
    res = reproduce('smoke', data=root, out=tmp_path, device='cpu', log=logs.append)
    d = json.loads((tmp_path / 'results.json').read_text())
    ds = d['dataset']
    assert ds['name'] == 'flickr30k' and ds['n_train'] > 0 and ds['n_test'] > 0
    assert ds['missing_images'] == q['missing_images'] and ds['missing_annotations'] == q['missing_annotations'] == 1
    assert ds['clipped_boxes'] == q['boxes_outside'] > 0                        # every box sticking out is clipped, none dropped
    assert 'dropped_boxes' not in ds
    assert ds['n_train'] + ds['n_test'] <= 64 - q['missing_images'] - 1         # dropped images are gone from every split
    assert any(l.startswith('repaired the data:') and 'clipped boxes' in l for l in logs)
    assert res['rows'] and all(0 <= v <= 100 for r in d['rows'] for v in r['metrics'].values())
    methods = {(r['method'], r['setting']) for r in d['rows']}
    assert {('Embedding', 'phrase-localization'), ('Similarity', 'image-to-sentence'), ('CCA', 'sentence-to-image')} <= methods
    assert (tmp_path / 'phrase_boxes.png').exists()


def test_phrase_boxes_land_on_the_objects(quirky, tmp_path):
    "Quirky images are the world's 64-px images stretched to real sizes, boxes scaled: mapped into the square, they land where the world's boxes do"
    root = quirky('flickr30k', n_images=64, split_fracs=SPLITS)
    write_world(tmp_path, 'flickr30k', n_images=64, split_fracs=SPLITS)     # the same scenes, 64×64, no quirks
    Fq, Fw = load_flickr30k_entities(root), load_flickr30k_entities(tmp_path)
    _, frames = read_images(Fq.images, 64)
    assert len({tuple(f) for f in frames.tolist()}) > 3                      # many real sizes, not one
    tq, iq, bq = phrase_boxes(Fq, frames)
    content = content_boxes(Fq, frames)                                       # where each stretched world image sits in its square
    ok = bad = 0
    for i, im in enumerate(Fq.images):
        mine = (iq == i).nonzero().flatten()
        world = [g for g in Fw.grounded(im.image_id) if g.sentence < 5]
        assert [tq[k] for k in mine.tolist()] == [g.phrase.text for g in world]     # <nobndbox> phrases added by the quirks are left out
        c = content[i]; wh = c[2:] - c[:2]
        want = torch.tensor([g.box for g in world]).reshape(-1, 4) * (wh / 64).repeat(2) + c[:2].repeat(2)
        err = (bq[mine] - want).abs().max(1).values
        close = err <= 1.5
        ok += int(close.sum()); bad += int((~close).sum())
        assert (bq[mine][~close, 2] >= c[2] - 1.5).all()                     # the only misses: boxes clipped at the right edge (quirk)
    assert ok > 0.8 * (ok + bad)


def _scale_annotation(path, W, H, sx, sy):
    "Rewrite a Flickr30K Entities XML for the image resaved at W×H (1-based inclusive boxes scaled by sx, sy)"
    root = ET.fromstring(path.read_text())
    root.find('size/width').text, root.find('size/height').text = str(W), str(H)
    for bb in root.iter('bndbox'):
        x1, y1, x2, y2 = (int(bb.find(t).text) for t in ('xmin', 'ymin', 'xmax', 'ymax'))
        for t, v in zip(('xmin', 'ymin', 'xmax', 'ymax'), (round((x1 - 1) * sx) + 1, round((y1 - 1) * sy) + 1, round(x2 * sx), round(y2 * sy))):
            bb.find(t).text = str(v)
    path.write_text(ET.tostring(root, encoding='unicode'))


def _ungrounded(path):
    "Every object of the annotation loses its box (<nobndbox>): the image keeps its captions, no phrase is grounded"
    root = ET.fromstring(path.read_text())
    for ob in root.findall('object'):
        bb = ob.find('bndbox')
        if bb is not None: ob.remove(bb); ET.SubElement(ob, 'nobndbox').text = '1'
    path.write_text(ET.tostring(root, encoding='unicode'))


def test_region_features_follow_the_image_at_another_size(tmp_path):
    "The same image stored 3× larger (or grey and non-square) gives the same boxes and nearly the same RoIAlign features"
    a, b = tmp_path / 'a', tmp_path / 'b'
    write_world(a, 'flickr30k', n_images=24, split_fracs=SPLITS)
    shutil.copytree(a, b)
    Fa = load_flickr30k_entities(a)
    ids = [im.image_id for im in Fa.images]
    big, wide, bare = ids[0], ids[1], ids[2]
    img = lambda r, i: r / 'flickr30k-images' / f'{i}.jpg'
    Image.open(img(a, big)).resize((192, 192), Image.BICUBIC).save(img(b, big), quality=95)
    _scale_annotation(b / 'Annotations' / f'{big}.xml', 192, 192, 3, 3)
    Image.open(img(a, wide)).resize((192, 128), Image.BICUBIC).convert('L').save(img(b, wide), quality=95)
    _scale_annotation(b / 'Annotations' / f'{wide}.xml', 192, 128, 3, 2)
    _ungrounded(b / 'Annotations' / f'{bare}.xml')
    cfg = TwoBranchConfig.smoke()
    from erret.proposals import pretrained_rpn
    bb = pretrained_rpn(proposal_config(cfg), device='cpu', targets='both').backbone
    built = lambda r: (lambda d: {**d, **_features(d, cfg, bb, 'cpu')})(_build(r, cfg, 'cpu'))   # what load_two_branch reads
    da, db = built(a), built(b)
    assert db['repairs'] == {} and db['ids'] == da['ids']
    box = lambda d, i: d['phrase_box'][d['phrase_image'] == ids.index(i)]
    feat = lambda d, i: d['phrase_feat'][d['phrase_image'] == ids.index(i)].float()
    torch.testing.assert_close(box(db, big), box(da, big), atol=0.5, rtol=0)          # 3× larger: back on the same pixels
    cos = torch.nn.functional.cosine_similarity(feat(db, big), feat(da, big))
    assert cos.min() > 0.9, cos                                                        # same region, up to resampling
    assert not torch.equal(db['images'][ids.index(big)], da['images'][ids.index(big)])  # (it was resampled)
    assert db['frames'][ids.index(wide)].tolist() == pytest.approx([1 / 3, 43 / 128, 0, 10])   # 192×128 -> 64×43, 10 px padding on top
    want = box(da, wide) * torch.tensor([1, 43 / 64, 1, 43 / 64]) + torch.tensor([0, 10, 0, 10])
    torch.testing.assert_close(box(db, wide), want, atol=0.75, rtol=0)
    pw = db['proposals'][ids.index(wide)]
    assert len(pw) and (pw[:, 1] >= 10).all() and (pw[:, 3] <= 53).all()                # proposals stay in the picture, not the padding
    assert all(torch.equal(x, y) for x, y in zip(da['proposals'][3:], db['proposals'][3:]))   # untouched 64-px images: the same proposals
    im = db['images'][ids.index(wide)]
    assert (im[:, :10] == torch.tensor([124, 116, 104])[:, None, None]).all()      # the padding: ImageNet mean colour
    assert ((im[0] == im[1]) & (im[1] == im[2]))[10:53].all()                      # the grey file became RGB
    assert len(box(db, bare)) == 0 and len(box(da, bare)) > 0                       # every phrase of `bare` is ungrounded now
    D = load_two_branch(cfg, b, 'cpu')                                              # ... and the rest of the pipeline copes
    k = ids.index(bare)
    assert len(D.image_phrases[k]) == 0 and D.proposal_iou[k].shape == (0, len(D.proposals[k])) and len(D.captions[k]) == 5
    T, _ = phrase_text(D, cfg)
    tr = D.phrase_idx('train')
    r = phrase_localization(CCABaseline(4, 8).fit(D.phrase_feat[tr], T[tr]), D, T)
    assert all(0 <= v <= 100 for v in r.values())
    for i in D.idx('test'): _ungrounded(b / 'Annotations' / f'{ids[i]}.xml')         # no test phrase left with a box: one clear error
    with pytest.raises(ErretError, match='no test image has a phrase with a box'): load_two_branch(cfg, b, 'cpu')
