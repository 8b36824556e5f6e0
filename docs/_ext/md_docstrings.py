"Sphinx extension: erret's docstrings are Markdown (backticks, $math$); turn them into reST for autodoc."
import re

_SPAN = re.compile(r'(`[^`]+`|\$[^$\n]+\$)')

_OPEN, _CLOSE = set(' -:/\'"<([{'), set(' -.,:;!?\\/\'")]}>')

def md_to_rst(text: str) -> str:
    "`code` -> ``code``, $x$ -> :math:`x`, and reST markup characters outside them escaped"
    parts, out = _SPAN.split(text), []
    for i, part in enumerate(parts):
        if i % 2:   # a code or math span: reST needs a separator beside it, `\ ` where the text has none
            lit = f'``{part[1:-1]}``' if part.startswith('`') else f':math:`{part[1:-1]}`'
            before, after = parts[i - 1][-1:], parts[i + 1][:1] if i + 1 < len(parts) else ''
            out.append(('\\ ' if before and before not in _OPEN else '') + lit + ('\\ ' if after and after not in _CLOSE else ''))
        else: out.append(re.sub(r'([*|_\\])', r'\\\1', part))
    return ''.join(out)

def _process(app, what, name, obj, options, lines):
    lines[:] = [md_to_rst(l) for l in lines]

def setup(app):
    app.connect('autodoc-process-docstring', _process)
    return {'parallel_read_safe': True, 'parallel_write_safe': True}
