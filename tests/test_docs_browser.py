"""The documentation site in a real browser: build it (tests/build_docs.sh), serve it on 127.0.0.1 and open every
paper page in headless Chromium: its images load, it shows its results table, no Python traceback.
Screenshots go to _build/screenshots/ (docs_PAGE.png: the top of the page, docs_PAGE_results.png: the results table).
Skips when Chromium, chromedriver, selenium or jupyter-book is missing (pip install -e ".[docs]";
apt-get install -y chromium chromium-driver). ERRET_DOCS_BUILT=1 reuses an existing _build/html."""
import json, os, re, subprocess, time
from pathlib import Path
import pytest
from browser_util import ROOT, missing, make_driver, serve, wait_for, screenshot, env_path

why = missing('jupyter-book')
pytestmark = pytest.mark.skipif(why is not None, reason=f'browser checks need what is missing here: {why}')

HTML = ROOT / '_build' / 'html'
IMAGE_TYPES = ('image/png', 'image/jpeg', 'image/svg+xml', 'image/gif')


def paper_pages() -> list[str]:
    "The notebooks of the 'Papers' part of docs/_toc.yml that exist in nbs/"
    toc = (ROOT / 'docs' / '_toc.yml').read_text(encoding='utf-8')
    part = re.search(r'caption:\s*Papers\s*\n(.*?)(?=\n\s*- caption:|\Z)', toc, re.S).group(1)
    return [n for n in re.findall(r'file:\s*nbs/(\S+)', part) if (ROOT / 'nbs' / f'{n}.ipynb').exists()]


def n_image_outputs(name: str) -> int:
    "How many image outputs the committed notebook holds (each must become an <img> on its page)"
    nb = json.loads((ROOT / 'nbs' / f'{name}.ipynb').read_text(encoding='utf-8'))
    return sum(any(t in o.get('data', {}) for t in IMAGE_TYPES) for c in nb['cells'] for o in c.get('outputs', []))


@pytest.fixture(scope='module')
def site():
    if os.environ.get('ERRET_DOCS_BUILT') != '1' or not (HTML / 'index.html').exists():
        t = time.time()
        r = subprocess.run([str(ROOT / 'tests' / 'build_docs.sh')], cwd=ROOT, env=env_path(), capture_output=True, text=True, timeout=1200)
        assert r.returncode == 0, f'build_docs.sh failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}'
        print(f'site built in {time.time() - t:.0f} s')
    with serve(HTML) as url: yield url


@pytest.fixture(scope='module')
def browser():
    d = make_driver()
    yield d
    d.quit()


PAGE_STATE = """
const art = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
const imgs = [...art.querySelectorAll('img')];
return {ready: document.readyState,
        images: imgs.map(i => ({src: i.getAttribute('src'), complete: i.complete, w: i.naturalWidth})),
        tables: art.querySelectorAll('table').length,
        tracebacks: art.querySelectorAll('.output.traceback, .output.error').length,
        text: art.innerText, title: document.title};
"""


def page_state(driver):
    for img in driver.find_elements('css selector', 'img'): driver.execute_script("arguments[0].loading = 'eager'", img)
    s = wait_for(lambda: (st := driver.execute_script(PAGE_STATE))['ready'] == 'complete' and all(i['complete'] for i in st['images']) and st,
                 timeout=60, what='the page and its images to load')
    return s


def test_home_page(site, browser):
    browser.get(site + '/intro.html')
    s = page_state(browser)
    screenshot(browser, 'docs_home')
    assert 'erret' in s['title'] and s['tables'] >= 1, s['title']     # the README's table of papers
    for name in paper_pages(): assert browser.find_elements('css selector', f'nav a[href*="nbs/{name}.html"]'), f'{name} not in the navigation'


@pytest.mark.parametrize('name', paper_pages())
def test_paper_page(site, browser, name):
    browser.get(f'{site}/nbs/{name}.html')
    s = page_state(browser)
    screenshot(browser, f'docs_{name}')
    broken = [i['src'] for i in s['images'] if i['w'] == 0]
    assert not broken, f'{name}: images that did not load: {broken}'
    want = n_image_outputs(name)
    assert len(s['images']) >= want, f'{name}: {len(s["images"])} images on the page, the notebook has {want} image outputs'
    assert s['tables'] >= 1, f'{name}: no results table on the page'
    assert 'Traceback (most recent call last)' not in s['text'] and s['tracebacks'] == 0, f'{name}: the page shows a Python traceback'
    tables = browser.find_elements('css selector', 'article table')
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", tables[-1])
    time.sleep(0.3)
    screenshot(browser, f'docs_{name}_results')
