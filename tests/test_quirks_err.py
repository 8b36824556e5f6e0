"ERR on a Visual Genome folder with the quirks of real files: mixed image sizes and modes, missing files, boxes outside, duplicates."
import json
import numpy as np
import pytest
import torch
from PIL import Image
from erret.datasets import load_vg, write_world, read_images, to_frame
from erret.encoders import SmallCNN

UNCACHED = ('erret.err',)                                   # tests/conftest.py: throw-away folders are not cached



def test_region_features_follow_the_image_at_another_size(tmp_path):
    "The same VG image stored at 3× its size (boxes scaled in the json) gives the same region features"
    from erret.err import region_features
    write_world(tmp_path / 'a', 'vg', n_images=3, seed=2)
    b = tmp_path / 'b'
    import shutil; shutil.copytree(tmp_path / 'a', b)
    imgs = json.loads((b / 'image_data.json').read_text()); regs = json.loads((b / 'region_descriptions.json').read_text())
    for im in imgs:
        p = b / 'VG_100K' / f"{im['image_id']}.jpg"
        Image.open(p).resize((192, 192), Image.BICUBIC).convert('L').convert('RGB').save(p, quality=95)
        im['width'] = im['height'] = 192
    for rec in regs:
        for r in rec['regions']: r.update({k: 3 * r[k] for k in ('x', 'y', 'width', 'height')})
    (b / 'image_data.json').write_text(json.dumps(imgs)); (b / 'region_descriptions.json').write_text(json.dumps(regs))
    va, vb = load_vg(tmp_path / 'a'), load_vg(b)
    ra, rb = [r for rs in va.regions.values() for r in rs], [r for rs in vb.regions.values() for r in rs]
    assert [r.region_id for r in ra] == [r.region_id for r in rb]
    for ia, ib in zip(va.images, vb.images):                                 # boxes land on the same pixels of the square
        _, fa = read_images([ia], 64); _, fb = read_images([ib], 64)
        torch.testing.assert_close(to_frame([r.box for r in vb.regions[ib.image_id]], fb[0]),
                                   to_frame([r.box for r in va.regions[ia.image_id]], fa[0]))
    cnn = SmallCNN().eval()
    fa, fb = region_features(va, ra, cnn, 2, device='cpu', cache=False), region_features(vb, rb, cnn, 2, device='cpu', cache=False)
    cos = torch.nn.functional.cosine_similarity(fa.float().flatten(1), fb.float().flatten(1))
    assert cos.min() > 0.8 and cos.mean() > 0.9, cos


def test_reproduce_on_quirky_vg(quirky, tmp_path):
    from erret.err import reproduce
    d = quirky('vg', n_images=200, split_fracs=(0.5, 0.2, 0.3))
    injected = json.loads((d / 'erret_quirks.json').read_text())
    lines = []
    res = reproduce('smoke', data=d, out=tmp_path / 'out', device='cpu', log=lines.append)
    assert (tmp_path / 'out' / 'results.json').exists()
    ds = res['dataset']
    assert ds['name'] == 'vg'
    for k, q in (('missing_images', 'missing_images'), ('duplicate_image_ids', 'duplicate_image_ids'), ('duplicate_region_ids', 'duplicate_region_ids'),
                 ('clipped_region_boxes', 'region_boxes_outside'), ('dropped_region_boxes', 'zero_area_region_boxes'),
                 ('images_without_regions', 'images_without_regions')):
        assert ds.get(k, 0) == injected.get(q, 0), (k, ds.get(k), injected.get(q))
    assert any(l.startswith('repaired the data:') for l in lines)
    assert any(l.startswith('proposals:') for l in lines)                       # the proposal path ran on mixed sizes too
    assert any(r['setting'] == 'RPN' for r in res['rows']) or any('RPN setting skipped' in l for l in lines)
    settings = {r['setting'] for r in res['rows']}
    assert 'lesson' in settings and {'GT · unnamed objects in box', 'GT · only named objects'} & settings   # groups from objects.json
    assert {('Oracle: objects in the box', 'GT'), ('Oracle: objects the phrase names', 'GT')} <= {(r['method'], r['setting']) for r in res['rows']}   # oracles from objects.json
    assert sum(res['dataset']['test_queries_by_group'][f'{f} focus'] for f in ('objects', 'attributes', 'relation')) == ds['n_test']
    for r in res['rows']:
        for k, v in r['metrics'].items():
            if k.startswith('R@'): assert 0 <= v <= 100, (r['method'], k, v)
