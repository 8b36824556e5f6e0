"Text2Scene on a COCO folder with real-data quirks: images of real sizes (boxes normalised per image), category ids with gaps, boxes outside / zero-area, crowd RLE regions, captions missing or extra."
import json
import numpy as np
import pytest
from erret.datasets import COCO_GAPPED_IDS, load_coco_instances
from erret.text2scene import Text2SceneConfig, load_text2scene, reproduce

pytestmark = pytest.mark.usefixtures('one_thread')   # tests/conftest.py


def test_quirky_layouts_are_normalised_and_counted(quirky):
    root = quirky('coco', n_images=160)
    q = json.loads((root / 'erret_quirks.json').read_text())
    inst = [load_coco_instances(root, f.stem[len('instances_'):]) for f in sorted((root / 'annotations').glob('instances_*.json'))]
    assert set(c for x in inst for c in x.categories) <= set(COCO_GAPPED_IDS)          # ids with gaps, as COCO's 1..90
    assert len({(im.width, im.height) for x in inst for im in x.images}) > 3             # images of mixed sizes
    D = load_text2scene(Text2SceneConfig.from_preset('smoke'), root)
    assert D.name == 'coco' and len(D.categories) == len({c for x in inst for c in x.categories})
    r = D.repairs
    assert r['crowd_annotations_skipped'] == q['crowd_annotations'] > 0                  # RLE crowd regions: not objects to draw
    assert r['clipped_object_boxes'] == q['object_boxes_outside'] > 0
    assert r['dropped_object_boxes'] == q['zero_area_object_boxes'] > 0
    assert r['images_without_captions'] == q['images_without_captions']
    for s in (s for sp in D.splits.values() for s in sp):
        b = np.asarray(s.boxes)
        assert (b >= 0).all() and (b <= 1).all() and (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
        assert s.text == s.text.strip() and all(0 <= c < len(D.categories) for c in s.classes)


def test_reproduce_smoke_on_quirky_coco(reproduce_quirky):
    d, q, logs = reproduce_quirky(reproduce, 'coco', n_images=160)
    ds = d['dataset']
    assert ds['name'] == 'coco' and ds['n_train'] > 0 and ds['n_test'] > 0
    assert ds['crowd_annotations_skipped'] == q['crowd_annotations'] and ds['clipped_object_boxes'] == q['object_boxes_outside']
    assert any(l.startswith('repaired the data:') and 'crowd annotations skipped' in l for l in logs)
    assert d['rows'] and all(np.isfinite(v) for r in d['rows'] for v in r['metrics'].values())
