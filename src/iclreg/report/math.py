"""Inline math of the reports as MathML: ``$...$`` in report text, rendered without any library
or network access.

``report.md`` keeps the ``$...$`` that GitHub renders; ``report.html`` replaces each span by a
``<math>`` element (MathML Core, native in current browsers), with the TeX source kept as its
annotation. The TeX understood is the small subset the reports write: letters, numbers and
operators; ``^`` and ``_`` (with ``{...}`` groups); ``\\frac``, ``\\sqrt``, ``\\hat``, ``\\bar``,
``\\tilde``, ``\\mathbb``, ``\\mathrm``/``\\operatorname``/``\\text``; Greek letters and the symbols in
``_SYMBOLS``. Anything else is shown as its name, never dropped.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

_GREEK = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ϵ", "varepsilon": "ε",
    "zeta": "ζ", "eta": "η", "theta": "θ", "iota": "ι", "kappa": "κ", "lambda": "λ", "mu": "μ",
    "nu": "ν", "xi": "ξ", "pi": "π", "rho": "ρ", "sigma": "σ", "tau": "τ", "phi": "ϕ",
    "varphi": "φ", "chi": "χ", "psi": "ψ", "omega": "ω", "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ",
    "Lambda": "Λ", "Xi": "Ξ", "Pi": "Π", "Sigma": "Σ", "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω",
}
_SYMBOLS = {  # operators and relations (<mo>)
    "top": "⊤", "cdot": "⋅", "times": "×", "le": "≤", "leq": "≤", "ge": "≥", "geq": "≥",
    "ne": "≠", "neq": "≠", "approx": "≈", "sim": "∼", "to": "→", "rightarrow": "→",
    "leftarrow": "←", "in": "∈", "pm": "±", "mp": "∓", "ldots": "…", "cdots": "⋯", "sum": "∑",
    "prod": "∏", "lVert": "‖", "rVert": "‖", "|": "‖", "langle": "⟨", "rangle": "⟩", "mid": "∣",
    "propto": "∝", "ll": "≪", "gg": "≫", "circ": "∘", "nabla": "∇", "partial": "∂", "infty": "∞",
    "{": "{", "}": "}", "setminus": "∖", "cup": "∪", "cap": "∩", "subset": "⊂", "equiv": "≡",
}
_FUNCTIONS = {"log", "exp", "min", "max", "arg", "tanh", "det", "tr", "diag", "sign", "softmax", "cos",
              "sin", "lim", "sup", "inf", "Var", "argmin", "argmax"}
_ACCENTS = {"hat": "^", "bar": "¯", "tilde": "~", "vec": "→", "overline": "¯"}
_SPACES = {",", ";", ":", "quad", "qquad", "!", " "}
_TOKEN = re.compile(r"\\([A-Za-z]+|.)|(\d+(?:\.\d+)?)|([A-Za-z])|(\s+)|(.)", re.S)
_BLACKBOARD = {"E": "𝔼", "R": "ℝ", "N": "ℕ", "P": "ℙ", "Z": "ℤ"}


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


class _Parser:
    """Recursive descent over the tokens of one TeX span."""

    def __init__(self, tex: str) -> None:
        self.tex = tex
        self.tokens = [m for m in _TOKEN.finditer(tex) if not m.group(4)]
        self.i = 0

    def peek(self) -> re.Match[str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> re.Match[str]:
        self.i += 1
        return self.tokens[self.i - 1]

    def expression(self, until: str | None = None) -> str:
        """Atoms with their scripts up to ``until`` (a closing ``}`` or ``]``) or the end."""
        parts = []
        while (tok := self.peek()) is not None:
            if until and tok.group(5) == until:
                self.take()
                break
            parts.append(self.scripted())
        return "".join(parts)

    def group(self) -> str:
        """A ``{...}`` group as one ``<mrow>``, or the next single atom."""
        tok = self.peek()
        if tok is not None and tok.group(5) == "{":
            self.take()
            return f"<mrow>{self.expression('}')}</mrow>"
        return self.atom() if tok is not None else "<mrow></mrow>"

    def raw_group(self) -> str:
        """The source text of a ``{...}`` group (for ``\\text`` and ``\\mathrm``), spaces kept."""
        tok = self.peek()
        if tok is None or tok.group(5) != "{":
            return self.take().group(0) if tok is not None else ""
        self.take()
        depth, start = 1, tok.end()
        while (tok := self.peek()) is not None:
            self.take()
            depth += {"{": 1, "}": -1}.get(tok.group(5) or "", 0)
            if depth == 0:
                return self.tex[start:tok.start()]
        return self.tex[start:]

    def scripted(self) -> str:
        base = self.atom()
        sub = sup = None
        while (tok := self.peek()) is not None and tok.group(5) in ("^", "_"):
            self.take()
            if tok.group(5) == "^":
                sup = self.group()
            else:
                sub = self.group()
        if sub is not None and sup is not None:
            return f"<msubsup>{base}{sub}{sup}</msubsup>"
        if sub is not None:
            return f"<msub>{base}{sub}</msub>"
        if sup is not None:
            return f"<msup>{base}{sup}</msup>"
        return base

    def atom(self) -> str:
        tok = self.take()
        command, number, letter, _, other = tok.groups()
        if number:
            return f"<mn>{number}</mn>"
        if letter:
            return f"<mi>{letter}</mi>"
        if command is not None:
            return self.command(command)
        if other == "{":
            return f"<mrow>{self.expression('}')}</mrow>"
        if other == "'":
            return "<mo>′</mo>"
        return f"<mo>{_esc(other)}</mo>"

    def command(self, name: str) -> str:
        handlers: dict[str, Callable[[], str]] = {
            "frac": lambda: f"<mfrac>{self.group()}{self.group()}</mfrac>",
            "sqrt": self.sqrt,
            "mathbb": lambda: f"<mi>{_esc(_BLACKBOARD.get(t := self.raw_group(), t))}</mi>",
            "left": lambda: self.atom() if self.peek() is not None else "",
            "right": lambda: self.atom() if self.peek() is not None else "",
        }
        if name in handlers:
            return handlers[name]()
        if name in _GREEK:
            return f"<mi>{_GREEK[name]}</mi>"
        if name in _SYMBOLS:
            return f"<mo>{_esc(_SYMBOLS[name])}</mo>"
        if name in _FUNCTIONS:
            return f"<mi>{name}</mi><mo>&#x2061;</mo>"
        if name in _SPACES:
            return "<mspace width='0.2em'></mspace>"
        if name in ("mathrm", "operatorname", "mathbf", "boldsymbol"):
            variant = "bold" if name in ("mathbf", "boldsymbol") else "normal"
            return f"<mi mathvariant='{variant}'>{_esc(self.raw_group())}</mi>"
        if name == "text":
            return f"<mtext>{_esc(self.raw_group())}</mtext>"
        if name in _ACCENTS:
            return f"<mover accent='true'>{self.group()}<mo>{_ACCENTS[name]}</mo></mover>"
        return f"<mi mathvariant='normal'>{_esc(name)}</mi>"  # unknown: shown, never dropped

    def sqrt(self) -> str:
        tok = self.peek()
        if tok is not None and tok.group(5) == "[":
            self.take()
            index = self.expression("]")
            return f"<mroot>{self.group()}<mrow>{index}</mrow></mroot>"
        return f"<msqrt>{self.group()}</msqrt>"


def tex_to_mathml(tex: str) -> str:
    """One ``<math>`` element for the TeX ``tex`` (the text between ``$`` signs)."""
    body = _Parser(tex).expression()
    return (f"<math><semantics><mrow>{body}</mrow>"
            f"<annotation encoding='application/x-tex'>{_esc(tex)}</annotation></semantics></math>")


# $...$ not inside a code span: no space just inside the dollars, no digit right after the closing
# one (so "$5 and $6" is money, as in Pandoc's rule)
_MATH = re.compile(r"(`+)(?:.*?)\1|(?<![\\$])\$(?=\S)((?:\\\$|[^$\n`])+?)(?<=\S)\$(?![\d$])", re.S)


def split_math(text: str) -> tuple[str, list[str]]:
    """``text`` with each ``$...$`` span outside code replaced by a placeholder word (which Markdown
    leaves alone), and the spans' MathML in order; :func:`restore_math` puts them back."""
    spans: list[str] = []

    def swap(m: re.Match[str]) -> str:
        if m.group(2) is None:
            return m.group(0)
        spans.append(tex_to_mathml(m.group(2).replace("\\$", "$")))
        return f"ICLREGMATH{len(spans) - 1}X"

    return _MATH.sub(swap, text), spans


def restore_math(rendered: str, spans: list[str]) -> str:
    """Put the MathML of :func:`split_math` in place of its placeholders."""
    return re.sub(r"ICLREGMATH(\d+)X", lambda m: spans[int(m.group(1))], rendered) if spans else rendered
