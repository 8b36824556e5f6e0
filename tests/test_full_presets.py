"""Every paper's `--full` code path, end to end on the CPU, with tiny counts.

A full run takes hours on a GPU; a crash in its last phase (a figure, a table row) would cost a GPU user all of them.
Each test runs `reproduce('full', seeds=[0])` under `erret.core.config_overrides` that shrink only *counts* (images,
epochs, queries, candidates, evaluation samples): what the full preset changes beyond them (128-px images, the ImageNet
VGG16, no 1×1 projection, un-pooled conv maps, paper-sized embeddings, 36 boxes, 28×28 grids, 128 locals, ...) is what
runs, and each test checks that the saved config still holds those full values. ImageNet weights are stand-ins: random
torchvision weights saved under torchvision's file names in a temporary torch-hub folder.

    ERRET_SLOW=1 python -m pytest tests/test_full_presets.py          # all seven (about 7 min on 2 CPU cores)
    ERRET_FULL_DEVICE=cuda ERRET_SLOW=1 python -m pytest tests/test_full_presets.py   # the same on a GPU (AMP, pinned memory)
"""
import json, math, os, time, importlib
import pytest, torch
from erret.core import config_overrides
from erret.results import load_results

DEVICE = os.environ.get('ERRET_FULL_DEVICE', 'cpu')

# the pre-training worlds of the full backbone / RPN, shrunk alike for every paper that builds them
SHARED = dict(BackboneConfig=dict(n_images=160, epochs=1), ProposalConfig=dict(n_images=64, epochs=1))

# paper -> (module, config class, its count overrides, rows that must be there); seconds on 2 busy CPU cores in comments
PAPERS = {
    'err': ('erret.err', 'ERRConfig', dict(n_images=300, epochs=1, sample_queries=6, conv_queries=6, rpn_epochs=1,      # ~70 s
                                           lesson_queries=120, lesson_eval=30, lesson_epochs=1),
            ('Visual Feature', 'Visual-Language LSTM Feature', 'Visual-Language Concat Feature', 'GRN w/o Residual Layer', 'GRN')),
    'tirg': ('erret.tirg', 'TIRGConfig', dict(n_images=120, epochs=1, decoder_epochs=1),                             # ~65 s: the conv methods on un-pooled maps
             ('Image only', 'Concatenate', 'FiLM', 'TIRG')),
    'identify': ('erret.identify', 'IdentifyConfig', dict(n_images=80, epochs=1, cap_epochs=1, batch_size=16,        # ~65 s: VGG16 at 128 px
                                                          pair_batches=2, pair_batch=16, gallery=12, n_point=12),
                 ('Baseline', 'Proposed', 'EB', 'c-MWP', 'phrase-contrastive EB')),
    'twobranch': ('erret.two_branch', 'TwoBranchConfig', dict(n_images=80, epochs_phrase=1, epochs_sentence=1),  # ~15 s
                  ('CCA', 'Embedding', 'Embedding (LSTM)', 'Similarity')),
    'drilldown': ('erret.drilldown', 'DrilldownConfig', dict(n_images=120, epochs=1, ft_epochs=1, budget_seeds=1),    # ~20 s
                  ('HRE', 'R-HRE', 'R-RE', 'R-RankFusion', 'Drill-down (FP)', 'Drill-down')),
    'rrt': ('erret.rrt', 'RRTConfig', dict(n_images=100, global_epochs=1, rrt_epochs=1, top_k=20, val_anchors=10,    # ~135 s: 128 locals, 6 layers
                                           ablation_locals=(16,)),
            ('Global', 'Global + SV', 'RRT', 'αQE', 'αQE + RRT')),
    'text2scene': ('erret.text2scene', 'Text2SceneConfig', dict(n_images=60, epochs=1),                            # ~40 s: 28×28 canvas
                   ('Text2Scene', 'Bag of objects', 'Text2Scene w/o canvas history')),
}
CHEAP = ('twobranch', 'drilldown', 'text2scene')   # about 75 s together: run by default (CI); the others need ERRET_SLOW=1


@pytest.fixture(scope='module')
def isolated(tmp_path_factory):
    "A fresh `$ERRET_DATA`: worlds, shrunk full backbones and their features never mix with the shared test cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('ERRET_DATA', str(tmp_path_factory.mktemp('erret-data'))); yield


@pytest.fixture(scope='module')
def imagenet_stand_ins(tmp_path_factory):
    "A torch-hub folder holding random VGG16 weights under torchvision's file name (the only ImageNet net a full path loads)"
    import torchvision
    from erret.encoders import imagenet_weights_path
    hub, old_hub = tmp_path_factory.mktemp('torch-hub'), torch.hub.get_dir()
    torch.hub.set_dir(str(hub))
    try:
        p = imagenet_weights_path('vgg16'); p.parent.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        sd = torchvision.models.vgg16(weights=None).state_dict()
        torch.save({k: v.half() if v.is_floating_point() else v for k, v in sd.items()}, p)   # fp16: half the disk, loads all the same
        yield p
    finally: torch.hub.set_dir(old_hub)


def run_full(paper, out):
    "`reproduce('full', seeds=[0])` of `paper` under its overrides -> (results.json, seconds)"
    mod, cls, over, _ = PAPERS[paper]
    t0 = time.time()
    with config_overrides(**SHARED, **{cls: over}):
        importlib.import_module(mod).reproduce('full', seeds=[0], out=out, device=DEVICE, log=lambda *a: None)
    return load_results(out), time.time() - t0


def check_full(paper, d, out):
    "What a full run must get right whatever its numbers: the full settings used, every expected row finite, every figure written"
    mod, cls, over, methods = PAPERS[paper]
    assert d['paper'] == paper and d['preset'] == 'full' and d['seeds'] == [0] and d['device'].startswith(DEVICE)
    cfg, full = json.loads((out / 'config.json').read_text()), getattr(importlib.import_module(mod), cls)._full
    assert cfg['class'] == cls and cfg['preset'] == 'full'
    for k, v in full.items():                                      # the full preset's own values, where not shrunk
        if k not in over: assert cfg[k] == json.loads(json.dumps(v)), (k, cfg[k], v)
    assert set(methods) <= {r['method'] for r in d['rows']}, sorted(r['method'] for r in d['rows'])
    for r in d['rows']:
        assert r['metrics'] and all(isinstance(v, (int, float)) and math.isfinite(v) for v in r['metrics'].values()), r
    assert d['figures'] and all((out / f).stat().st_size > 0 for f in d['figures']), d['figures']


def _spy(monkeypatch, obj, name, seen, what):
    "Wrap `obj.name`, appending `what(args, result)` to `seen` on every call"
    real = getattr(obj, name)
    def f(*a, **kw):
        r = real(*a, **kw); seen.append(what(a, r)); return r
    monkeypatch.setattr(obj, name, f)


@pytest.mark.parametrize('paper', [pytest.param(p, marks=() if p in CHEAP else pytest.mark.slow) for p in PAPERS])
def test_full_preset(paper, isolated, tmp_path, monkeypatch, request):
    if paper == 'identify': request.getfixturevalue('imagenet_stand_ins')
    import erret.encoders, erret.identify
    loads, feats = [], []
    _spy(monkeypatch, erret.encoders, 'load_imagenet_weights', loads, lambda a, r: a[1])
    _spy(monkeypatch, erret.identify, 'body_features', feats, lambda a, r: tuple(r.shape))
    d, secs = run_full(paper, tmp_path)
    print(f"{paper}: full path in {secs:.0f} s")
    check_full(paper, d, tmp_path)
    if paper == 'identify':                                         # the ImageNet VGG16 of the paper, conv5_3 at stride 16
        assert loads == ['vgg16'] and feats[0] == (80, 512, 8, 8), (loads, feats)
    else: assert not loads
