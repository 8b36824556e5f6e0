"Tests for `erret.viz` (figures) and `erret.widgets` (the retrieval explorer), headless (Agg)."
import base64, io
import numpy as np
import pytest
import torch
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from PIL import Image
from hypothesis import given, settings, strategies as st

from erret.core import ErretError
from erret.results import aggregate_rows, make_row
from erret.viz import (to_numpy_image, show_image, image_grid, draw_boxes, retrieval_grid, plot_curves, plot_lines,
                       resize_heat, overlay_heatmap, words_colored, results_table, table_figure, save_figure,
                       colour_square, DEMO_COLOURS, QUERY, CORRECT, WRONG, NEUTRAL, IMAGENET_MEAN, IMAGENET_STD)
from erret.widgets import RetrievalExplorer, topk_desc

NAMES = list(DEMO_COLOURS)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close('all')


def edge(ax): return ax.spines['top'].get_edgecolor()


# ---------------------------------------------------------------- pictures
def test_to_numpy_image_formats():
    im = colour_square('purple', 40)
    ref = im / 255
    t = torch.from_numpy(im).permute(2, 0, 1).float() / 255
    z = (t - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
    for x in (im, Image.fromarray(im), t, t[None], im / 255, im.astype(np.float64), lambda: im,
              np.concatenate([im, np.full((40, 40, 1), 255, np.uint8)], -1)):
        out = to_numpy_image(x)
        assert out.shape == (40, 40, 3) and out.dtype == np.float32
        np.testing.assert_allclose(out, ref, atol=1e-6)
    np.testing.assert_allclose(to_numpy_image(z, denorm=True), ref, atol=1e-5)
    assert to_numpy_image(torch.rand(1, 9, 7)).shape == (9, 7, 3)   # grey tensor
    with pytest.raises(ErretError, match='expected a picture'): to_numpy_image(np.zeros((5,)))


def test_to_numpy_image_path(tmp_path):
    p = tmp_path / 'a.png'; Image.fromarray(colour_square('red')).save(p)
    np.testing.assert_allclose(to_numpy_image(p), colour_square('red') / 255, atol=1e-6)


def test_image_grid_axes_and_titles():
    fig = image_grid([colour_square(c) for c in NAMES] + [colour_square()], titles=NAMES + ['x'], ncols=3)
    assert isinstance(fig, Figure) and len(fig.axes) == 7
    assert [a.get_title() for a in fig.axes] == NAMES + ['x']
    with pytest.raises(ErretError, match='no images'): image_grid([])


def test_show_image_on_given_axes():
    fig = Figure(); ax = fig.subplots()
    assert show_image(colour_square(), ax, 'q') is ax and ax.get_title() == 'q' and len(ax.images) == 1


# ---------------------------------------------------------------- boxes
def test_draw_boxes_captions_and_colours():
    boxes = torch.tensor([[2., 3., 20., 30.], [30, 30, 60, 60], [0, 0, 10, 10]])
    ax = draw_boxes(colour_square(size=64), boxes, captions=['one', 'two', 'three'], colors=['red', 'yellow', 'navy'])
    assert len(ax.patches) == 3
    assert [p.get_edgecolor() for p in ax.patches] == [to_rgba(c) for c in ('red', 'yellow', 'navy')]
    r = ax.patches[1]; assert (r.get_x(), r.get_y(), r.get_width(), r.get_height()) == (30, 30, 30, 30)
    assert [t.get_text() for t in ax.texts] == ['one', 'two', 'three']
    assert ax.texts[1].get_color() == 'black' and ax.texts[2].get_color() == 'white'   # readable on the label colour
    assert ax.texts[1].get_bbox_patch().get_facecolor()[:3] == to_rgba('yellow')[:3]
    ax = draw_boxes(colour_square(), [1, 2, 3, 4], colors='red')                      # a single box, one colour
    assert len(ax.patches) == 1 and not ax.texts
    ax = draw_boxes(colour_square(), boxes, colors=('red', 'yellow', 'navy'))         # a tuple of names: one per box
    assert [p.get_edgecolor() for p in ax.patches] == [to_rgba(c) for c in ('red', 'yellow', 'navy')]
    ax = draw_boxes(colour_square(), boxes, colors=(0.1, 0.2, 0.3))                    # one RGB colour for all
    assert {p.get_edgecolor() for p in ax.patches} == {to_rgba((0.1, 0.2, 0.3))}
    with pytest.raises(ErretError, match='1 captions for 2 boxes'): draw_boxes(colour_square(), np.zeros((2, 4)), captions=['a'])


# ---------------------------------------------------------------- retrieval grid
def _grid_data(nq=3, k=4):
    qs = [colour_square(NAMES[i]) for i in range(nq)]
    res = [[colour_square(NAMES[(i + j) % 6]) for j in range(k)] for i in range(nq)]
    ok = [[(i + j) % 6 == i for j in range(k)] for i in range(nq)]   # only rank 1 is correct
    return qs, res, ok


def test_retrieval_grid_borders():
    qs, res, ok = _grid_data()
    ok[2][3] = True
    fig = retrieval_grid(qs, res, ok, query_titles=['a', 'b', 'c'], scores=[[0.5, 0.4, 0.3, 0.2]] * 3,
                         result_titles=[['r1', 'r2', 'r3', 'r4']] * 3)
    assert len(fig.axes) == 3 * 5
    rows = [fig.axes[i * 5:(i + 1) * 5] for i in range(3)]
    for q, row in enumerate(rows):
        assert row[0].get_title() == 'abc'[q]
        assert [edge(a) for a in row[1:]] == [to_rgba(CORRECT if c else WRONG) for c in ok[q]]
        assert all(a.spines['left'].get_linewidth() == 4 for a in row[1:])
    assert rows[0][1].get_title() == 'r1\n0.5'


def test_retrieval_grid_without_labels_and_ragged_rows():
    qs, res, _ = _grid_data(2, 3)
    res[1] = res[1][:1]
    fig = retrieval_grid(qs, res)
    assert len(fig.axes) == 2 + 3 + 1
    assert all(edge(a) == to_rgba(NEUTRAL) for a in fig.axes[1:4])
    fig = retrieval_grid(qs, res, [[True, False, True], [False]], borders=False)
    assert [edge(fig.axes[i]) for i in (0, 4)] == [to_rgba(QUERY)] * 2                # the queries: blue
    assert all(edge(fig.axes[i]) == to_rgba(NEUTRAL) for i in (1, 2, 3, 5))          # the results


def test_retrieval_grid_box_styles():
    qs, res, ok = _grid_data(1, 3)
    bx = [[[2, 2, 20, 20], [[1, 1, 5, 5], [6, 6, 9, 9]], None]]
    fig = retrieval_grid(qs, res, ok, query_titles=['the red one'], query_boxes=[[1, 1, 30, 30]], boxes=bx, style='err')
    q, r1, r2, r3 = fig.axes
    assert q.patches[0].get_edgecolor() == to_rgba('red') and q.texts[0].get_text() == 'the red one'
    assert r1.patches[0].get_edgecolor() == to_rgba('red')                  # positive region: red
    assert [p.get_edgecolor() for p in r2.patches] == [to_rgba('yellow')] * 2  # negatives: yellow
    assert not r3.patches
    fig = retrieval_grid(qs, res, ok, query_boxes=[[1, 1, 30, 30]], boxes=bx)  # default style
    q, r1, r2, _ = fig.axes
    assert not q.texts and r1.patches[0].get_edgecolor() == to_rgba(CORRECT) and r2.patches[0].get_edgecolor() == to_rgba(WRONG)
    fig = retrieval_grid(qs, res, ok, boxes=bx, box_colors=[['cyan', 'magenta', None]])
    assert fig.axes[1].patches[0].get_edgecolor() == to_rgba('cyan')
    assert fig.axes[2].patches[1].get_edgecolor() == to_rgba('magenta')


def test_retrieval_grid_errors():
    qs, res, ok = _grid_data(2, 3)
    with pytest.raises(ErretError, match='1 result lists for 2 queries'): retrieval_grid(qs, res[:1])
    with pytest.raises(ErretError, match="style='paper'"): retrieval_grid(qs, res, ok, style='paper')
    with pytest.raises(ErretError, match=r'scores\[0\] has 2 items for 3 results'): retrieval_grid(qs, res, ok, scores=[[1, 2], [1, 2, 3]])


# ---------------------------------------------------------------- curves and tables
def test_plot_curves_panels():
    hist = [{'epoch': e, 'train_loss': 1 / (e + 1), 'R@1': 10. * e, 'R@5': 20. + e, 'lr': 0.1, 'seconds': 2.} for e in range(4)]
    fig = plot_curves(hist)
    assert len(fig.axes) == 2
    assert fig.axes[0].get_xlabel() == 'epoch' and fig.axes[0].get_ylabel() == 'loss'
    assert sorted(t.get_text() for t in fig.axes[1].get_legend().get_texts()) == ['R@1', 'R@5']
    assert len(plot_curves([{'loss': 1.0}, {'loss': 0.5}]).axes) == 1         # no epoch column: the row index
    with pytest.raises(ErretError, match='history is empty'): plot_curves([])


def test_plot_lines():
    data = {'turn': [1, 2, 3] * 2, 'R@10': [1, 2, 3, 2, 3, 4], 'method': ['a'] * 3 + ['b'] * 3}
    fig = plot_lines(data, 'turn', 'R@10', hue='method')
    assert len(fig.axes) == 1 and fig.axes[0].get_xlabel() == 'turn'
    fig2 = Figure(); ax = fig2.subplots()
    assert plot_lines(data, 'turn', 'R@10', ax=ax) is fig2


def test_results_table_from_aggregated_rows():
    rows = aggregate_rows([[make_row('TIRG', 'css', **{'R@1': 70, 'R@5': 90})], [make_row('TIRG', 'css', **{'R@1': 74, 'R@5': 90})]])
    df = results_table(rows, digits=1)
    assert list(df.columns) == ['method', 'setting', 'R@1', 'R@5']
    assert df.loc[0, 'R@1'] == f"72.0 ± {np.std([70, 74], ddof=1):.1f}" and df.loc[0, 'R@5'] == '90.0 ± 0.0'
    assert len(table_figure(rows).axes) == 1


# ---------------------------------------------------------------- saliency
def test_resize_heat_by_hand():
    np.testing.assert_allclose(resize_heat([[0, 1], [0, 1]], (4, 4)), np.tile([0, .25, .75, 1], (4, 1)), atol=1e-6)
    up = resize_heat(torch.tensor([[1., 3.], [5., 7.]]), (6, 10))
    assert up.shape == (6, 10) and up.min() == 0 and up.max() == 1
    np.testing.assert_allclose(resize_heat(np.full((2, 2), 4.0), (3, 3), normalize=False), np.full((3, 3), 4.0))
    with pytest.raises(ErretError, match=r'expected a \(h, w\) map'): resize_heat(np.zeros((1, 2, 2)), (4, 4))


def test_overlay_heatmap_shape():
    t = torch.rand(3, 48, 80)
    ax = overlay_heatmap(t, np.random.rand(6, 10), alpha=0.3, cmap='viridis')
    assert len(ax.images) == 2 and ax.images[1].get_array().shape == (48, 80)
    assert ax.images[1].get_alpha() == 0.3 and ax.images[1].get_cmap().name == 'viridis'


def test_words_colored_intensity_and_wrapping():
    words = ['w%d' % i for i in range(40)]
    wts = np.linspace(0, 1, 40)
    ax = words_colored(words, torch.tensor(wts), width=3)
    assert [t.get_text() for t in ax.texts] == words
    lum = [np.mean(t.get_bbox_patch().get_facecolor()[:3]) for t in ax.texts]
    assert all(a >= b for a, b in zip(lum, lum[1:]))                            # heavier: darker
    assert len({round(t.get_window_extent().y0) for t in ax.texts}) > 1         # wrapped onto several lines
    assert ax.figure.get_figheight() > 1                                         # and the figure grew to hold them
    ax = words_colored(['a', 'b'], [0, 0])                                       # all-zero weights are fine
    assert len(ax.texts) == 2


# ---------------------------------------------------------------- saving
def test_save_figure_png(tmp_path):
    qs, res, ok = _grid_data(2, 2)
    fig = retrieval_grid(qs, res, ok)
    p = save_figure(fig, tmp_path / 'sub' / 'grid.png', dpi=50)
    with Image.open(p) as im: assert im.format == 'PNG' and im.size[0] > 50
    assert sorted(x.name for x in p.parent.iterdir()) == ['grid.png']
    ax = show_image(colour_square())                                              # a pyplot figure is closed
    n = len(plt.get_fignums()); save_figure(ax.figure, tmp_path / 'one'); assert len(plt.get_fignums()) == n - 1
    assert (tmp_path / 'one.png').exists()
    with pytest.raises(ErretError, match='should end in .png'): save_figure(Figure(), tmp_path / 'x.pdf')


def test_save_figure_is_atomic(tmp_path, monkeypatch):
    fig = Figure(); fig.subplots()
    def boom(*a, **k): raise RuntimeError('disk full')
    monkeypatch.setattr(fig, 'savefig', boom)
    with pytest.raises(RuntimeError, match='disk full'): save_figure(fig, tmp_path / 'f.png')
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- widgets
@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=40), st.integers(0, 45))
def test_topk_desc_matches_stable_argsort(vals, k):
    s = np.array(vals, float)
    assert topk_desc(s, k).tolist() == np.argsort(-s, kind='stable')[:k].tolist()


def _explorer(**kw):
    rng = np.random.default_rng(0)
    gal_col = rng.integers(0, 6, 25)
    gallery = [colour_square(NAMES[c]) for c in gal_col]
    queries = [colour_square(NAMES[c]) for c in range(4)]
    scores = torch.tensor((np.arange(4)[:, None] == gal_col[None]) + rng.normal(0, .4, (4, 25)))
    pos = torch.tensor(np.arange(4)[:, None] == gal_col[None])
    return RetrievalExplorer(queries, gallery, scores, pos, query_titles=NAMES[:4], **kw), scores.numpy(), pos.numpy()


def test_explorer_select_topk_order():
    ex, s, pos = _explorer(k=5)
    for q in (3, 0, 2):
        top = ex.select(q)
        want = np.argsort(-s[q], kind='stable')[:5]
        assert [g for g, _, _ in top] == want.tolist()
        np.testing.assert_allclose([sc for _, sc, _ in top], s[q, want])
        assert [c for _, _, c in top] == pos[q, want].tolist()
        assert ex.query == q and ex.current == top
        assert [edge(a) for a in ex.current_figure.axes[1:]] == [to_rgba(CORRECT if c else WRONG) for _, _, c in top]
        assert ex.current_figure.axes[0].get_title() == NAMES[q]
    n = ex.n_renders; ex.select(2); assert ex.n_renders == n + 1                  # same query: redrawn once
    with pytest.raises(ErretError, match='out of range'): ex.select(4)


def test_explorer_k_slider():
    ex, s, _ = _explorer(k=3)
    assert len(ex.current) == 3 and len(ex.current_figure.axes) == 4
    ex.k_slider.value = 7
    assert ex.k == 7 and len(ex.current) == 7 and len(ex.current_figure.axes) == 8
    assert [g for g, _, _ in ex.current] == np.argsort(-s[0], kind='stable')[:7].tolist()
    assert ex.k_slider.max == 20
    assert RetrievalExplorer([colour_square()], [colour_square()] * 3, np.ones((1, 3)), k=10).k == 3   # clamped to G


def test_explorer_dropdown_updates_output():
    ex, _, _ = _explorer()
    assert type(ex.query_picker).__name__ == 'Dropdown'
    assert ex.query_picker.options[1] == ('1: green', 1)
    png0, n = ex.output.outputs[0]['data']['image/png'], ex.n_renders
    ex.query_picker.value = 3                                                     # as a user would
    assert ex.n_renders == n + 1 and ex.query == 3
    png1 = ex.output.outputs[0]['data']['image/png']
    assert png1 != png0 and len(ex.output.outputs) == 1
    with Image.open(io.BytesIO(base64.b64decode(png1))) as im: assert im.format == 'PNG'
    assert 'yellow' in ex.info.value and 'correct' in ex.info.value
    from ipywidgets import VBox
    assert isinstance(ex.widget, VBox) and ex.output in ex.widget.children


def test_explorer_lazy_topk_mode():
    loads = []
    def gallery(i): loads.append(i); return lambda: colour_square(NAMES[i % 6])   # a loader of a loader
    S = torch.randn(700, 20_000)
    val, idx = S.topk(8, dim=1)
    ex = RetrievalExplorer(lambda q: colour_square(NAMES[q % 6]), gallery, (idx, val),
                           positives=[[int(idx[q, 0])] for q in range(700)], k=4,
                           gallery_boxes={int(g): [1, 1, 9, 9] for g in idx[:, :8].flatten()})
    assert type(ex.query_picker).__name__ == 'IntSlider' and ex.k_slider.max == 8
    assert loads == idx[0, :4].tolist()                                           # only what is shown is loaded
    top = ex.select(5)
    assert [g for g, _, _ in top] == idx[5, :4].tolist() and [c for _, _, c in top] == [True, False, False, False]
    assert all(len(a.patches) == 1 for a in ex.current_figure.axes[1:])


def test_explorer_no_positives_and_bad_input():
    ex = RetrievalExplorer([colour_square()] * 2, [colour_square()] * 6, np.arange(12.).reshape(2, 6), k=2)
    assert ex.select(1) == [(5, 11.0, None), (4, 10.0, None)]
    assert all(edge(a) == to_rgba(NEUTRAL) for a in ex.current_figure.axes[1:])
    with pytest.raises(ErretError, match='gallery has 5 items but the scores have 6'):
        RetrievalExplorer([colour_square()] * 2, [colour_square()] * 5, np.zeros((2, 6)))
    with pytest.raises(ErretError, match=r'scores should be \(Q, G\)'):
        RetrievalExplorer([colour_square()], [colour_square()], np.zeros(3))
    with pytest.raises(ErretError, match=r'positives mask should be \(Q, G\) = \(2, 6\)'):
        RetrievalExplorer([colour_square()] * 2, [colour_square()] * 6, np.zeros((2, 6)), positives=np.zeros((2, 3), int))
    ex = RetrievalExplorer([colour_square()] * 2, [colour_square()] * 6, np.zeros((2, 6)), positives=[[True] * 6, [False] * 6])
    assert [c for _, _, c in ex.select(1)] == [False] * 5                       # a list of bool rows is a mask
    with pytest.raises(ErretError, match='positives has 1 lists for 2 queries'):
        RetrievalExplorer([colour_square()] * 2, [colour_square()] * 6, np.zeros((2, 6)), positives=[[0]])


def test_one_colour_language():
    "Every grid explains its colours in a legend; long titles are wrapped to the picture's width, never cut"
    qs, res, ok = _grid_data(2, 3)
    ok[1][2] = None
    long = 'a pink pentagon and a purple cross at the bottom of the picture'
    fig = retrieval_grid(qs, res, ok, query_titles=[long, 'b'])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ['query', 'hit (correct)', 'miss (wrong)', 'not judged']
    title = fig.axes[0].get_title()
    assert '\n' in title and title.replace('\n', ' ') == long
    assert not retrieval_grid(qs, res, legend=False).legends
    assert [t.get_text() for t in retrieval_grid(qs, res).legends[0].get_texts()] == ['query']
    fig = image_grid(qs, ['make the top-left object large and red', 'x'])
    assert fig.axes[0].get_title().replace('\n', ' ') == 'make the top-left object large and red'
    assert fig.get_size_inches()[0] >= 2 * 2.0                                   # 64-px scenes drawn at >= 2 inches
