"Drill-down on real-data quirks: mixed image sizes / modes (letterbox + frames), boxes mapped before RoIAlign, repairs counted in results.json."
import json
from pathlib import Path
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from erret.datasets import ImageInfo, VGData, VGObject, load_vg, read_images, to_frame, world_dataset
from erret.backbone import BackboneConfig, pretrained_backbone, feature_maps
from erret.encoders import roi_features
from erret.drilldown import region_features, image_boxes, content_mean, vg_sessions, reproduce, METHODS

UNCACHED = ('erret.drilldown',)                                   # tests/conftest.py: throw-away folders are not cached
pytestmark = pytest.mark.usefixtures('one_thread')   # one_thread: tests/conftest.py



@pytest.fixture(scope='module')
def backbone():
    return pretrained_backbone(BackboneConfig.from_preset('smoke'), device='cpu', quiet=True)


def test_same_regions_at_any_image_size(tmp_path, backbone):
    "A world image stored at 64×64 and at 256×256 (boxes ×4): the same region features once the boxes are mapped with the frame"
    vg = load_vg(world_dataset('vg', n_images=64), check_images=False)
    iid = next(iter(vg_sessions(vg)))
    src, objs = vg.info(iid).open(), vg.objects[iid]
    src.save(tmp_path / 'a.jpg', quality=95); src.resize((256, 256), Image.BILINEAR).save(tmp_path / 'b.jpg', quality=95)
    toy = VGData(tmp_path, [ImageInfo(1, tmp_path / 'a.jpg', 64, 64), ImageInfo(2, tmp_path / 'b.jpg', 256, 256)], {1: [], 2: []},
                 {1: objs, 2: [VGObject(o.object_id, 2, o.names, tuple(4 * v for v in o.box)) for o in objs]})
    n = len(objs) + 5
    f, m, bx, g, fr = region_features(toy, [1, 2], backbone, n_boxes=n)
    assert m.sum(1).tolist() == [n, n]
    assert torch.equal(fr, torch.tensor([[1., 1., 0., 0.], [.25, .25, 0., 0.]]))
    assert torch.equal(bx[1], 4 * bx[0])                                           # stored in annotation pixels
    cos = F.cosine_similarity(f[0].float(), f[1].float(), dim=-1)
    assert cos.min() > 0.97, cos                                                   # same regions, up to resampling
    assert F.cosine_similarity(g[0].float(), g[1].float(), dim=0) > 0.97
    # without the frame the 256-px boxes fall (mostly) off the 64-px square: features unlike the region's
    ims, _ = read_images(toy.images, 64)
    raw = roi_features(feature_maps(backbone, ims[1:], device='cpu').float(), [bx[1]], backbone.stride, 2).mean((2, 3))
    assert F.cosine_similarity(f[0].float(), raw, dim=-1).mean() < cos.mean() - 0.2


def test_boxes_land_on_the_object_in_a_letterboxed_image(tmp_path, backbone):
    "A 300×150 white image with a red square: its object box, mapped with the frame, covers red pixels; the whole-image box covers the content only"
    im = Image.new('RGB', (300, 150), (255, 255, 255)); im.paste((220, 0, 0), (200, 40, 260, 100))
    im.save(tmp_path / 'r.png')
    info = ImageInfo(7, tmp_path / 'r.png', 300, 150)
    vg = VGData(tmp_path, [info], {7: []}, {7: [VGObject(1, 7, ['square'], (200., 40., 260., 100.))]})
    boxes = torch.tensor(image_boxes(vg, 7, n_boxes=6, grid=2))
    assert boxes[1].tolist() == [0., 0., 300., 150.]                              # whole image: annotation pixels
    arr, frame = info.read(64)
    sq = to_frame(boxes, frame)
    x1, y1, x2, y2 = sq[0].round().int().tolist()
    inside = arr[y1 + 1:y2 - 1, x1 + 1:x2 - 1]
    assert (inside[..., 0] > 180).all() and (inside[..., 1] < 60).all()            # the mapped object box is red inside
    assert sq[1].tolist() == [0., 16., 64., 48.]                                  # content of a 2:1 image: 64×32, centred
    f, m, bx, g, fr = region_features(vg, [7], backbone, n_boxes=6, grid=2)
    fm = feature_maps(backbone, torch.from_numpy(arr.copy()).permute(2, 0, 1)[None], device='cpu').float()
    assert torch.allclose(g[0].float(), fm[0, :, 2:6].mean((1, 2)), atol=1e-2)     # global feature: rows 2-5 (the content), not the padding
    assert not torch.allclose(g[0].float(), fm[0].mean((1, 2)), atol=1e-2)
    assert torch.equal(content_mean(fm, torch.tensor([[0., 0., 64., 64.]]), 8), fm.mean((2, 3)))


def test_reproduce_on_quirky_vg(quirky, tmp_path):
    "The smoke preset end to end on a VG folder with real-data quirks; every repair is counted in results.json"
    root = quirky('vg', n_images=80, split_fracs=(0.6, 0.0, 0.4))
    q = json.loads((root / 'erret_quirks.json').read_text())
    assert q['missing_images'] >= 1 and q['region_boxes_outside'] >= 1 and q['zero_area_region_boxes'] >= 1
    lines = []
    res = reproduce('smoke', data=root, out=tmp_path, device='cpu', log=lambda *a: lines.append(' '.join(map(str, a))))
    saved = json.loads((tmp_path / 'results.json').read_text())
    assert saved['dataset'] == res['dataset']
    ds = saved['dataset']
    assert ds['name'] == 'vg'
    assert ds['missing_images'] == q['missing_images']
    assert ds['duplicate_image_ids'] == q['duplicate_image_ids']
    assert ds['duplicate_region_ids'] == q['duplicate_region_ids']
    assert ds['clipped_region_boxes'] == q['region_boxes_outside']
    assert ds['dropped_region_boxes'] == q['zero_area_region_boxes']
    assert ds['images_without_regions'] == q['images_without_regions']
    n_listed = len(json.loads((root / 'image_data.json').read_text())) - q['duplicate_image_ids']
    assert ds['n_train'] + ds['n_test'] + ds['images_with_too_few_regions'] == n_listed - q['missing_images']   # no val split here
    assert any(l.startswith('repaired the data:') and f"{q['missing_images']} missing images" in l for l in lines)
    assert {r['method'] for r in saved['rows']} >= set(METHODS)
    for r in saved['rows']:
        assert all(0 <= v <= 100 for v in r['metrics'].values()), r
    assert all((tmp_path / f).exists() for f in saved['figures'])
