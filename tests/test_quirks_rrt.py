"RRT on real-data quirks: images of any size / mode letterboxed, queries cropped to their bbx, missing files and bad boxes counted in results.json."
import json
import numpy as np
import pytest
import torch
from PIL import Image
from erret.datasets import RevisitedData, PAD_RGB, letterbox
from erret.rrt import RRTConfig, rrt_world_kw, METHODS, load_rrt, query_images, reproduce

UNCACHED = ('erret.rrt',)                                   # tests/conftest.py: throw-away folders are not cached
pytestmark = pytest.mark.usefixtures('one_thread')   # one_thread: tests/conftest.py



def _scene(W, H, k=1):
    "A white W×H image with a red and a blue square (scaled with the image): (image, bbx around both + 2 px)"
    im = Image.new('RGB', (W, H), (255, 255, 255))
    sx, sy = W / 64, H / 64
    im.paste((220, 0, 0), (round(20 * sx), round(20 * sy), round(30 * sx), round(30 * sy)))
    im.paste((0, 0, 220), (round(34 * sx), round(28 * sy), round(44 * sx), round(44 * sy)))
    return im, [18 * sx, 18 * sy, 46 * sx, 46 * sy]


def test_query_is_cropped_to_its_bbx_at_any_size(tmp_path):
    "The same query stored at 64×64 and at 612×612 (bbx scaled) gives the same cropped, letterboxed query; a bbx sticking out is clipped"
    (tmp_path / 'jpg').mkdir()
    gnd = []
    for name, W in (('q64', 64), ('q612', 612)):
        im, bbx = _scene(W, W); im.save(tmp_path / 'jpg' / f'{name}.jpg', quality=95)
        gnd.append({'bbx': bbx, 'easy': [], 'hard': [], 'junk': []})
    im, bbx = _scene(800, 600); im.save(tmp_path / 'jpg' / 'wide.jpg', quality=95)
    gnd.append({'bbx': [bbx[0], bbx[1], 900., bbx[3]], 'easy': [], 'hard': [], 'junk': []})   # x2 outside the 800-px image
    rox = RevisitedData(tmp_path, 'toy', [], ['q64', 'q612', 'wide'], gnd)
    q = query_images(rox, 64)
    assert q.shape == (3, 3, 64, 64) and q.dtype == torch.uint8
    a, b = q[0].float(), q[1].float()
    assert (a - b).abs().mean() < 8                                                 # same crop, up to resampling / JPEG
    assert (a - torch.roll(b, 8, dims=2)).abs().mean() > 2 * (a - b).abs().mean()   # ... and a shifted crop is clearly different
    crop = rox.query_image(2, crop=True)                                            # clipped to the image: x from 225 to 800
    assert crop.size == (800 - round(bbx[0]), round(bbx[3]) - round(bbx[1]))
    assert torch.equal(q[2], torch.from_numpy(letterbox(crop, 64)[0].copy()).permute(2, 0, 1))
    red = (q[0][0] > 180) & (q[0][1] < 60)
    assert red.float().mean() > 0.1                                                 # the crop zooms on the objects (red fills > 10 %)


def test_load_rrt_letterboxes_mixed_sizes(quirky):
    "A quirky folder (800×600, 333×500, grey, CMYK, 16-bit ... files): every image letterboxed to cfg.size, queries = their crops"
    cfg = RRTConfig.smoke()
    root = quirky('roxford', n_images=120, **rrt_world_kw(cfg))
    D = load_rrt(cfg, root)
    assert D.db.shape[1:] == (3, cfg.size, cfg.size) and D.train.shape[1:] == (3, cfg.size, cfg.size)
    assert len(D.db) == len(D.rox) and len(D.train) == len(D.gld) and len(D.queries) == len(D.rox.qimlist)
    assert D.cropped and torch.equal(D.queries, query_images(D.rox, cfg.size))     # --data: cropped to the bbx (not a cache of an older reading)
    i = next(i for i in range(len(D.rox)) if Image.open(D.rox.image_path(i)).size == (800, 600))
    pad = torch.tensor(PAD_RGB, dtype=torch.uint8)[:, None]
    assert torch.equal(D.db[i][:, 0], pad.expand(3, cfg.size))                     # a 4:3 image: padded above ...
    assert not torch.equal(D.db[i][:, cfg.size // 2], pad.expand(3, cfg.size))     # ... its content in the middle


def test_reproduce_on_quirky_roxford(quirky, tmp_path):
    "The smoke preset end to end on a Revisited + GLDv2 folder with real-data quirks; the repairs in results.json equal what was injected"
    cfg = RRTConfig.smoke()
    root = quirky('roxford', n_images=120, **rrt_world_kw(cfg))
    q = json.loads((root / 'erret_quirks.json').read_text())
    assert q['missing_images'] >= 1 and q['missing_train_images'] >= 1 and q['query_boxes_outside'] >= 1
    lines = []
    res = reproduce('smoke', data=root, out=tmp_path, device='cpu', log=lambda *a: lines.append(' '.join(map(str, a))))
    saved = json.loads((tmp_path / 'results.json').read_text())
    ds = saved['dataset']
    assert ds == res['dataset'] and ds['name'] == 'roxford5k' and ds['queries_cropped'] is True
    assert ds['missing_images'] == q['missing_images']
    assert ds['missing_train_images'] == q['missing_train_images']
    assert ds['clipped_query_boxes'] == q['query_boxes_outside']
    assert 'missing_queries' not in ds                                              # the writer never deletes a query
    assert any(l.startswith('repaired the data:') and f"{q['missing_images']} missing images" in l for l in lines)
    assert {r['method'] for r in saved['rows']} >= set(METHODS)
    for r in saved['rows']:
        assert all(v is None or 0 <= v <= 100 for v in r['metrics'].values()), r
    assert (tmp_path / 'rerank_grid.png').exists()
