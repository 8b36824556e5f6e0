"Headless Chromium for the browser checks (tests/test_docs_browser.py, tests/test_widget_browser.py): skip reasons, a driver, a local server, screenshots"
import http.server, os, shutil, socket, sys, threading, time
from contextlib import contextmanager
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = Path(os.environ.get('ERRET_SCREENSHOTS', ROOT / '_build' / 'screenshots'))   # git-ignored


def chromium() -> tuple[str | None, str | None]:
    "Paths of a Chromium binary and its chromedriver (Debian: apt-get install -y chromium chromium-driver), or None"
    browser = next((shutil.which(b) for b in ('chromium', 'chromium-browser', 'google-chrome') if shutil.which(b)), None)
    return browser, shutil.which('chromedriver')


def jupyter_book() -> str | None:
    "The jupyter-book command: on PATH, or beside this Python (a venv that is not activated)"
    here = Path(sys.executable).parent / 'jupyter-book'
    return shutil.which('jupyter-book') or (str(here) if here.exists() else None)


def env_path() -> dict:
    "os.environ with this Python's bin folder first on PATH (for tests/build_docs.sh and its jupyter-book)"
    return {**os.environ, 'PATH': f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def missing(*needs: str) -> str | None:
    "Why the browser checks cannot run here (None when they can): `needs` are 'jupyter-book' and/or 'jupyterlab'"
    browser, driver = chromium()
    if browser is None: return 'no Chromium (apt-get install -y chromium chromium-driver)'
    if driver is None: return 'no chromedriver (apt-get install -y chromium-driver)'
    try: import selenium  # noqa: F401
    except ImportError: return 'no selenium (pip install -e ".[docs]")'
    if 'jupyter-book' in needs and jupyter_book() is None: return 'no jupyter-book (pip install -e ".[docs]")'
    if 'jupyterlab' in needs:
        try: import jupyterlab  # noqa: F401
        except ImportError: return 'no jupyterlab'
    return None


def make_driver(width: int = 1280, height: int = 1600):
    "A headless Chromium driven by selenium, pointed at the system browser and chromedriver (no download)"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    browser, driver = chromium()
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', f'--window-size={width},{height}',
              '--disable-extensions', '--no-first-run', '--hide-scrollbars'):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service(driver), options=opts)
    d.set_page_load_timeout(60)
    return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


@contextmanager
def serve(folder: Path):
    "Serve `folder` on 127.0.0.1 (a free port) in a thread; yields the base URL"
    handler = partial(type('Quiet', (http.server.SimpleHTTPRequestHandler,), {'log_message': lambda *a: None}), directory=str(folder))
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True); t.start()
    try: yield f'http://127.0.0.1:{srv.server_address[1]}'
    finally: srv.shutdown(); srv.server_close()


def wait_for(fn, timeout: float = 30, every: float = 0.25, what: str = 'condition'):
    "Poll `fn()` until it returns something truthy; that value, or AssertionError naming `what` after `timeout` s"
    end, last = time.time() + timeout, None
    while time.time() < end:
        try:
            v = fn()
            if v: return v
        except Exception as e: last = e   # the page may still be loading
        time.sleep(every)
    raise AssertionError(f'timed out after {timeout} s waiting for {what}' + (f' (last error: {last})' if last else ''))


def screenshot(driver, name: str) -> Path:
    "Save the viewport as SCREENSHOTS/name.png; returns the path"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    p = SCREENSHOTS / f'{name}.png'
    driver.save_screenshot(str(p))
    return p
