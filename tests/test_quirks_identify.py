"identify on a COCO captions folder with real-data quirks: mixed sizes and modes (letterboxed), missing files, images with no / 3 / 7 captions; repairs counted in results.json."
import json
import pytest
import torch
from PIL import Image
from erret.datasets import PAD_RGB, load_coco_captions
from erret.identify import read_coco_split, reproduce

pytestmark = pytest.mark.usefixtures('one_thread')   # tests/conftest.py


def test_read_coco_split_letterboxes_every_image(quirky):
    root = quirky('coco', n_images=160)
    q = json.loads((root / 'erret_quirks.json').read_text())
    D = read_coco_split(root, 64)
    assert D.images.shape == (len(D.captions), 3, 64, 64) and D.images.dtype == torch.uint8
    coco = load_coco_captions(root)
    info = {im.image_id: im for im in coco.images}
    assert len(info) == 160 - q['missing_images']                                     # missing files dropped ...
    assert D.repairs['missing_images'] == q['missing_images']                          # ... and counted
    assert D.repairs['images_without_captions'] == q['images_without_captions'] > 0
    assert len(D.captions) == len(info) - q['images_without_captions']                 # no caption: not a retrieval target
    assert all(1 <= len(c) <= 5 for c in D.captions) and any(len(c) == 3 for c in D.captions)
    assert D.repairs['captions_beyond_max'] == 2 * q['images_with_extra_captions'] > 0  # COCO's 5 per image kept
    sizes = [(info[i].width, info[i].height) for i in D.image_ids]
    assert len(set(sizes)) > 3
    modes = {Image.open(info[i].path).mode for i in D.image_ids}
    assert 'L' in modes and len(modes - {'RGB'}) >= 3                                   # grayscale, CMYK, palette, 16-bit ... read as RGB
    k = next(k for k, (W, H) in enumerate(sizes) if W > 1.3 * H)                        # a landscape image: bands above and below
    assert (D.images[k, :, 0] == torch.tensor(PAD_RGB)[:, None]).all()
    assert all(w for c in D.captions for w in c) and not any(c != c.strip() for cs in D.captions for c in cs)


def test_reproduce_smoke_on_quirky_coco(reproduce_quirky):
    d, q, logs = reproduce_quirky(reproduce, 'coco', n_images=160)
    ds = d['dataset']
    assert ds['name'] == 'coco' and ds['n_train'] > 0 and ds['n_test'] > 0
    assert ds['missing_images'] == q['missing_images'] and ds['images_without_captions'] == q['images_without_captions']
    assert any(l.startswith('repaired the data:') and f"{q['missing_images']} missing images" in l for l in logs)
    assert {r['setting'] for r in d['rows']} >= {'pairwise', 'gallery-1k'}
    assert all(0 <= v <= 100 for r in d['rows'] for v in r['metrics'].values())
