"""The retrieval explorer in a real browser: JupyterLab on 127.0.0.1 with a token, a small notebook that builds a
`RetrievalExplorer` on smoke Shapes-world scenes, run in headless Chromium; moving the query slider must change
the displayed grid (its PNG data URL) and the caption. Screenshots: _build/screenshots/widget_before.png,
widget_after.png. Skips when Chromium, chromedriver, selenium or JupyterLab is missing."""
import json, os, secrets, subprocess, sys, time, urllib.request
import pytest
from browser_util import missing, make_driver, free_port, wait_for, screenshot

why = missing('jupyterlab')
pytestmark = pytest.mark.skipif(why is not None, reason=f'browser checks need what is missing here: {why}')

CELLS = [
    "import numpy as np\n"
    "from erret.world import make_scene, render\n"
    "from erret.widgets import RetrievalExplorer",
    # smoke data: 40 scenes of the Shapes world; a query is a scene, the score is the overlap of their colour sets
    "rng = np.random.default_rng(0)\n"
    "scenes = [make_scene(rng) for _ in range(40)]\n"
    "colours = [{o.colour for o in s.objects} for s in scenes]\n"
    "Q = 8\n"
    "S = np.array([[len(colours[q] & colours[g]) / len(colours[q] | colours[g]) for g in range(Q, 40)] for q in range(Q)])\n"
    "S = S + rng.normal(0, 0.05, S.shape)\n"
    "first = [scenes[q].objects[0].colour for q in range(Q)]\n"
    "pos = S >= 0.5                                       # a hit: half the colours in common",
    # max_dropdown=0: the query picker is an IntSlider
    "ex = RetrievalExplorer(lambda q: render(scenes[q], 64), lambda g: render(scenes[Q + g], 64), S, pos, k=4,\n"
    "                       query_titles=[f'scene {q}: {first[q]} ...' for q in range(Q)], max_dropdown=0)\n"
    "ex",
]


def notebook() -> dict:
    cell = lambda i, s: {'cell_type': 'code', 'execution_count': None, 'id': f'c{i}', 'metadata': {}, 'outputs': [], 'source': s}
    return {'cells': [cell(i, s) for i, s in enumerate(CELLS)], 'nbformat': 4, 'nbformat_minor': 5,
            'metadata': {'kernelspec': {'display_name': 'Python 3', 'language': 'python', 'name': 'python3'}}}


@pytest.fixture
def lab(tmp_path):
    "JupyterLab on 127.0.0.1 (free port, random token) serving tmp_path, which holds explorer.ipynb; yields (url, token)"
    (tmp_path / 'explorer.ipynb').write_text(json.dumps(notebook(), indent=1))
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, 'JUPYTER_CONFIG_DIR': str(tmp_path / '.cfg'), 'JUPYTERLAB_SETTINGS_DIR': str(tmp_path / '.settings'),
           'JUPYTERLAB_WORKSPACES_DIR': str(tmp_path / '.ws'), 'JUPYTER_RUNTIME_DIR': str(tmp_path / '.rt'), 'MPLBACKEND': 'Agg'}
    env.pop('PYTEST_CURRENT_TEST', None)
    news = tmp_path / '.settings' / '@jupyterlab' / 'apputils-extension'     # no "Jupyter news?" pop-up over the output
    news.mkdir(parents=True); (news / 'notification.jupyterlab-settings').write_text('{"fetchNews": "false"}')
    log = open(tmp_path / 'lab.log', 'w')
    p = subprocess.Popen([sys.executable, '-m', 'jupyterlab', '--no-browser', '--ip=127.0.0.1', f'--port={port}',
                          f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={tmp_path}',
                          '--LabApp.expose_app_in_browser=True', '--LabApp.news_url=None', '--ServerApp.port_retries=0', '--ServerApp.allow_root=True'],
                         cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}'
    try:
        wait_for(lambda: urllib.request.urlopen(f'{url}/api/status?token={token}', timeout=2).status == 200, timeout=90,
                 what=f'JupyterLab to start (log: {tmp_path / "lab.log"})')
        yield url, token
    finally:
        p.terminate()
        try: p.wait(20)
        except subprocess.TimeoutExpired: p.kill()
        log.close()


KERNEL_IDLE = """
const app = window.jupyterapp; if (!app) return null;
const w = app.shell.currentWidget; if (!w || !w.sessionContext) return null;
const s = w.sessionContext.session; return s && s.kernel ? s.kernel.status + ':' + w.sessionContext.isReady : null;
"""

GRID = """
const img = document.querySelector('.jp-OutputArea-output .widget-output img, .widget-output img');
const info = document.querySelector('.widget-html-content');
const sliders = [...document.querySelectorAll('.widget-slider')].map(s => (s.querySelector('.widget-readout') || {}).textContent);
return img && img.naturalWidth > 0 ? {src: img.src, w: img.naturalWidth, info: info ? info.innerText : '', sliders: sliders} : null;
"""


def test_explorer_slider_changes_grid(lab):
    from selenium.webdriver.common.action_chains import ActionChains
    url, token = lab
    d = make_driver(1400, 1100)
    try:
        t = time.time()
        d.get(f'{url}/lab/tree/explorer.ipynb?token={token}')
        wait_for(lambda: d.execute_script(KERNEL_IDLE) == 'idle:true', timeout=120, what='the notebook and its kernel')
        d.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        before = wait_for(lambda: d.execute_script(GRID), timeout=120, what='the explorer to show its grid')
        assert before['src'].startswith('data:image/png'), before['src'][:40]
        assert before['sliders'][:2] == ['0', '4'], before['sliders']      # query 0, k = 4
        screenshot(d, 'widget_before')
        # move the query slider: drag its handle to the right
        handle = d.find_elements('css selector', '.widget-slider .noUi-handle')[0]
        ActionChains(d).click_and_hold(handle).move_by_offset(60, 0).release().perform()
        after = wait_for(lambda: (g := d.execute_script(GRID)) and g['src'] != before['src'] and g['info'] != before['info'] and g, timeout=60,
                         what='the grid and its caption to change after moving the query slider')   # two widget updates: wait for both
        q = int(after['sliders'][0])
        assert q > 0, after['sliders']
        assert after['info'] != before['info'] and f'scene {q}:' in after['info'], (before['info'], after['info'])
        screenshot(d, 'widget_after')
        print(f'explorer: query 0 -> {q}, grid changed; {time.time() - t:.0f} s in the browser')
    finally: d.quit()
