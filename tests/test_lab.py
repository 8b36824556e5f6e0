"""`erret lab` end to end with nbgrader's own CLI: `erret lab PAPER` -> `nbgrader generate_assignment` ->
`nbgrader autograde` of the instructor's version, the untouched student version and versions with one exercise
solved; scores read from nbgrader's gradebook.

Generating every paper's student version takes seconds and runs always. Grading executes the lab notebooks at
the smoke preset (about 1-4 minutes per paper): TIRG and RRT in every run (one exercise solved), all seven
papers with every exercise solved on its own when `ERRET_SLOW=1` (tests/conftest.py)."""
import json, shutil, subprocess, sys
from pathlib import Path
import pytest
from erret.lab import LABS, write_lab, lab_scores, solution_code, unmark

DEFAULT = ('tirg', 'rrt')                       # graded in every run: the two quickest labs
SLOW = tuple(p for p in LABS if p not in DEFAULT)


def erret_lab(paper, course):
    p = subprocess.run([sys.executable, '-m', 'erret', 'lab', paper, '--out', str(course)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout


def nbgrader(course, *args):
    p = subprocess.run([sys.executable, '-m', 'nbgrader', *args], cwd=course, capture_output=True, text=True)
    assert p.returncode == 0, (p.stdout[-3000:], p.stderr[-3000:])
    return p.stdout + p.stderr


def cells_by_grade_id(path):
    nb = json.loads(Path(path).read_text(encoding='utf-8'))
    return nb, {c['metadata']['nbgrader']['grade_id']: c for c in nb['cells'] if 'nbgrader' in c['metadata']}


def _src(c): return c['source'] if isinstance(c['source'], str) else ''.join(c['source'])


def outside_solutions(src):
    "The lines of `src` outside its solution regions"
    out, inside = [], False
    for l in src.split('\n'):
        if l.strip() in ('### BEGIN SOLUTION', '### END SOLUTION'): inside = l.strip() == '### BEGIN SOLUTION'
        elif not inside: out.append(l)
    return out


def sources(course, paper):
    "(source cells, release notebook, release cells, check names) by nbgrader grade id"
    _, src = cells_by_grade_id(course / 'source' / paper / f'{paper}.ipynb')
    rel_nb, rel = cells_by_grade_id(course / 'release' / paper / f'{paper}.ipynb')
    return src, rel_nb, rel, [k for k in src if k.startswith('check_')]


@pytest.fixture(scope='module')
def course(tmp_path_factory):
    "Every paper's lab in one course, and their student versions (one nbgrader call: converters glob the assignment id)"
    d = tmp_path_factory.mktemp('course')
    for p in LABS: write_lab(p, d)
    nbgrader(d, 'generate_assignment', '*')
    return d


@pytest.mark.parametrize('paper', list(LABS))
def test_student_version_has_no_solution(paper, course):
    src, rel_nb, rel, checks = sources(course, paper)
    assert 3 <= len(checks) <= 6
    text = json.dumps(rel_nb)
    assert 'BEGIN SOLUTION' not in text and 'HIDDEN TESTS' not in text
    for check in checks:
        name = check.removeprefix('check_')
        s, r = _src(src[name]), _src(rel[name])
        sol = {l.strip() for l in solution_code(s) if l.strip()}
        outside = {l.strip() for l in outside_solutions(s)}
        assert 'raise NotImplementedError()' in r, name
        assert not (sol - outside) & {l.strip() for l in r.split('\n')}, name      # no solution line left in the answer cell
        assert rel[check]['metadata']['nbgrader']['points'] == src[check]['metadata']['nbgrader']['points'] > 0
        if '### BEGIN HIDDEN TESTS' in _src(src[check]):                           # hidden: only the comment is left
            assert _src(rel[check]).strip().startswith('#') and '\n' not in _src(rel[check]).strip(), name
    assert rel['smoke_preset']['metadata']['nbgrader']['locked'] and "os.environ['IN_TEST'] = '1'" in _src(rel['smoke_preset'])


def grade(paper, course, solve):
    "Autograde the instructor's version, the untouched student version and one version per exercise in `solve`"
    assert f'nbgrader generate_assignment {paper}' in erret_lab(paper, course)
    nbgrader(course, 'generate_assignment', paper)
    src, rel_nb, rel, checks = sources(course, paper)
    names = [c.removeprefix('check_') for c in checks]
    subs = {'instructor': json.loads((course / 'source' / paper / f'{paper}.ipynb').read_text()), 'student': rel_nb}
    for name in (names if solve == 'each' else solve):
        nb = json.loads(json.dumps(rel_nb))
        for c in nb['cells']:
            if c['metadata'].get('nbgrader', {}).get('grade_id') == name: c['source'] = unmark(_src(src[name]))
        subs[f'solved_{name}'] = nb
    for who, nb in subs.items():
        d = course / 'submitted' / who / paper; d.mkdir(parents=True)
        (d / f'{paper}.ipynb').write_text(json.dumps(nb), encoding='utf-8')
    nbgrader(course, 'autograde', paper)
    points = {n: src[f'check_{n}']['metadata']['nbgrader']['points'] for n in names}
    return lab_scores(course, paper), points, subs


def errors(course, who, paper):
    nb = json.loads((course / 'autograded' / who / paper / f'{paper}.ipynb').read_text())
    return [o['ename'] for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', []) if o['output_type'] == 'error']


def check_grades(paper, course, solve):
    scores, points, subs = grade(paper, course, solve)
    assert set(scores) == set(subs)
    assert scores['instructor'] == points                                        # full marks
    assert errors(course, 'instructor', paper) == []                             # and the whole lab ran cleanly
    assert scores['student'] == {n: 0 for n in points}                           # 0 on every exercise ...
    assert 'NotImplementedError' in errors(course, 'student', paper)             # ... graded, not crashed
    for who in subs:
        if who.startswith('solved_'):
            name = who.removeprefix('solved_')
            assert scores[who] == {n: (p if n == name else 0) for n, p in points.items()}, (who, scores[who])


@pytest.mark.parametrize('paper,solve', [('tirg', ['TIRG']), ('rrt', ['rrt_tokens'])])
def test_grading(paper, solve, tmp_path):
    check_grades(paper, tmp_path, solve)


@pytest.mark.slow
@pytest.mark.parametrize('paper', list(LABS))
def test_grading_every_exercise(paper, tmp_path):
    check_grades(paper, tmp_path, 'each')
