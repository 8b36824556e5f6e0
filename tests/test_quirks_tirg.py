"TIRG on files with real-data quirks: quirky CSS (images of real sizes and modes, missing files rendered), Fashion200k and MIT-States photos of mixed sizes and modes."
import json, shutil
from pathlib import Path
import numpy as np
import pytest
import torch
from PIL import Image
import erret
from erret.datasets import PAD_RGB
from erret.tirg import load_tirg_data, split_images, small_images, css_features, reproduce
from erret.backbone import BackboneConfig, pretrained_backbone

UNCACHED = ('erret.tirg',)                                   # tests/conftest.py: throw-away folders are not cached
pytestmark = pytest.mark.usefixtures('one_thread')   # tests/conftest.py

FIX = Path(erret.__file__).resolve().parent.parent / 'data' / 'datasets'
SIZES = ((300, 200), (120, 180), (64, 64), (50, 90), (640, 480), (97, 61))
MODES = ('RGB', 'L', 'CMYK', 'P', 'RGBA', 'I;16')


def _rows_ok(d, setting):
    rows = [r for r in d['rows'] if r['setting'] == setting]
    assert [r['method'] for r in rows] == ['Image only', 'TIRG']
    assert all(0 <= v <= 100 for r in rows for v in r['metrics'].values())


def test_reproduce_on_quirky_css(quirky, tmp_path):
    root = quirky('css', n_images=200)                                          # the smoke preset's world size
    q = json.loads((root / 'erret_quirks.json').read_text())
    logs = []
    reproduce('smoke', data=root, out=tmp_path, device='cpu', methods=('Image only', 'TIRG'), log=logs.append)
    d = json.loads((tmp_path / 'results.json').read_text())
    assert d['dataset']['name'] == 'css' and d['dataset']['n_train'] > 0 and d['dataset']['n_test'] > 0
    assert d['dataset']['rendered_images'] == q['missing_images'] > 0            # a missing CSS image is drawn from its objects
    assert logs == [f"repaired the data: {q['missing_images']} rendered images"]
    _rows_ok(d, 'css-2d')
    assert all((tmp_path / f).exists() for f in d['figures']) and 'retrieval_grid.png' in d['figures']
    css, _ = load_tirg_data(root)
    sp = css['train']
    ims = split_images(sp)
    assert ims.shape == (len(sp), 3, 64, 64) and ims.dtype == torch.uint8
    sizes = {Image.open(p).size for p in sp.image_paths if p is not None}
    assert len(sizes) > 3 and (64, 64) not in sizes                               # real-world sizes, all letterboxed to 64
    for i, p in enumerate(sp.image_paths):
        if p is None: continue
        W, H = Image.open(p).size
        pad = (64 - round(min(W, H) * 64 / max(W, H))) // 2
        edge = ims[i, :, :pad] if W > H else ims[i, :, :, :pad]                    # the bands above / left of the picture
        assert (edge == torch.tensor(PAD_RGB)[:, None, None]).all()


def _save(im: Image.Image, stem: Path, k: int) -> Path:
    "Save `im` at the k-th size and mode of SIZES / MODES (JPEG where the mode allows, else PNG); returns the path"
    im = im.convert('RGB').resize(SIZES[k % len(SIZES)], Image.BILINEAR)
    mode = MODES[k % len(MODES)]
    stem.parent.mkdir(parents=True, exist_ok=True)
    if mode in ('RGB', 'L', 'CMYK'): p = stem.with_suffix('.jpg'); im.convert(mode).save(p, quality=90)
    elif mode == 'I;16': p = stem.with_suffix('.png'); Image.fromarray(np.asarray(im.convert('L')).astype(np.uint16) * 257).save(p)
    else: p = stem.with_suffix('.png'); (im.convert('P', palette=Image.ADAPTIVE) if mode == 'P' else im.convert('RGBA')).save(p)
    return p


COLOURS = {'red': (200, 30, 30), 'blue': (30, 30, 200), 'black': (20, 20, 20), 'ancient': (150, 120, 60), 'broken': (90, 90, 90), 'modern': (40, 160, 200)}

def _photo(base: Image.Image, colour: str, k: int) -> Image.Image:
    "The fixture photo, tinted by `colour`, with a stripe whose place depends on k (images of one label differ)"
    a = np.asarray(base.convert('RGB').resize((48, 64)), dtype=np.float32) * 0.3 + np.array(COLOURS[colour]) * 0.7
    a[8 * (k % 6):8 * (k % 6) + 6] = 255
    return Image.fromarray(a.astype(np.uint8))


def _fashion(root: Path) -> int:
    "A small Fashion200k folder (from the fixture's photos): dresses (train) and skirts (test) of one-word-different descriptions; returns the number of missing files listed"
    base = Image.open(next((FIX / 'fashion200k' / 'women').rglob('*.jpeg')))
    (root / 'labels').mkdir(parents=True)
    k = 0
    for cat, split, materials in (('dress', 'train', ('lace', 'silk')), ('skirt', 'test', ('denim', 'wool'))):
        lines = []
        for colour in ('red', 'blue', 'black'):
            for mat in materials:
                for j in range(2):
                    p = _save(_photo(base, colour, k), root / 'women' / f'{cat}es' / f'{k:05d}' / f'{k:05d}_{colour}_{j}', k); k += 1
                    lines.append(f"{p.relative_to(root)}\t0.9\t{colour} {mat} {cat}")
        if split == 'test': lines.append(f"women/{cat}es/99999/99999_0.jpeg\t0.5\tgreen {materials[0]} {cat}")   # listed, file missing
        (root / 'labels' / f'{cat}_{split}_detect_all.txt').write_text('\n'.join(lines) + '\n')
    return 1


def _mit_states(root: Path):
    "A small MIT-States folder (from the fixture's photos): 3 nouns × 3 adjectives × 2 photos, plus the skipped 'adj <noun>' folder"
    base = Image.open(next((FIX / 'mit_states' / 'images').rglob('*.jpg')))
    k = 0
    for noun in ('bottle', 'building', 'car'):
        for adj in ('ancient', 'broken', 'modern'):
            for j in range(2): _save(_photo(base, adj, k), root / 'images' / f'{adj} {noun}' / f'image_{k}', k); k += 1
    shutil.copytree(FIX / 'mit_states' / 'images' / 'adj building', root / 'images' / 'adj building')
    (root / 'adj.txt').write_text('ancient\nbroken\nmodern\n'); (root / 'noun.txt').write_text('bottle\nbuilding\ncar\n')


@pytest.mark.parametrize('kind', ['fashion200k', 'mit-states'])
def test_photos_of_mixed_sizes_and_modes(kind, tmp_path):
    root = tmp_path / kind
    n_missing = _fashion(root) if kind == 'fashion200k' else (_mit_states(root), 0)[1]
    data, setting = load_tirg_data(root)
    assert setting == kind and dict(data.repairs) == ({'missing_images': n_missing} if n_missing else {})
    for s in ('train', 'test'):
        sp = data[s]
        assert len(sp.queries()) >= 8 and all(p is not None and p.exists() for p in sp.image_paths)
        files = [Image.open(p) for p in sp.image_paths]
        assert len({im.size for im in files}) > 2 and len({im.mode for im in files}) > 2          # mixed sizes and modes
        ims = split_images(sp)
        assert ims.shape == (len(sp), 3, 64, 64) and ims.dtype == torch.uint8
        for p, im, x in zip(sp.image_paths, files, ims):
            W, H = im.size
            pad = (64 - round(min(W, H) * 64 / max(W, H))) // 2
            if pad: assert ((x[:, :pad] if W > H else x[:, :, :pad]) == torch.tensor(PAD_RGB)[:, None, None]).all()
            c = x[:, 32, 32].tolist()                                                # the picture's centre
            if im.mode in ('L', 'I;16'): assert c[0] == c[1] == c[2]                # grey stays grey, as RGB
            elif min(c) < 200 and ('_red_' in p.name or '_blue_' in p.name):           # colour photos (CMYK, palette ...) keep their tint
                assert (c[0] - c[2] if '_red_' in p.name else c[2] - c[0]) > 60, (p, c)
        sm = small_images(sp)
        assert sm.shape == (len(sp), 3, 32, 32) and 0 <= sm.min() and sm.max() <= 1
    bb = pretrained_backbone(BackboneConfig.from_preset('smoke'), device='cpu', quiet=True)
    f = css_features(data['test'], bb, 'cpu')
    assert f.shape[0] == len(data['test']) and torch.isfinite(f.float()).all()
    out = tmp_path / 'out'
    reproduce('smoke', data=root, out=out, device='cpu', methods=('Image only', 'TIRG'), log=lambda *a: None)
    d = json.loads((out / 'results.json').read_text())
    assert d['dataset']['name'] == kind and d['dataset'].get('missing_images', 0) == n_missing
    _rows_ok(d, kind)
