"""The CSS embedded in every HTML report (``report.html``, the demo's ``index.html``).

Layout rules that keep a page readable at any width from a phone (390 px) to 1200 px and more:
the body is at most 1160 px wide; a figure keeps its natural size (its text stays readable) in a
box that scrolls sideways when the screen is narrower (``.figscroll``); the claims table keeps
a minimum width per column (760 px in all, so a SPEC never breaks after every character) and,
like every other table, scrolls sideways inside its own box (``.wide``), never the page. MathML
gets the body's colour and a slightly larger size.
"""

CSS = """
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1b1b1b;
 max-width:1160px;margin:0 auto;padding:8px 20px 48px;background:#fff}
h1{font-size:25px;line-height:1.25;margin:18px 0 8px}
h2{font-size:20px;line-height:1.3;margin:34px 0 8px;padding-bottom:4px;border-bottom:2px solid #d8d8d8}
h3{font-size:16.5px;margin:26px 0 6px}
section>h2{border-bottom:3px solid #4a6fa5}
p,li{overflow-wrap:break-word}
a{color:#1f5fa8}
.summary{margin:6px 0}.files{margin:2px 0 10px;font-size:13px;color:#444}
.wide{overflow-x:auto;max-width:100%;margin:8px 0 12px}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #cfcfcf;padding:3px 7px;vertical-align:top;text-align:left}
thead th{background:#eef1f5}
tbody tr:nth-child(even){background:#fafafa}
table.claims{width:100%;min-width:760px;table-layout:fixed}
table.claims td{overflow-wrap:break-word}
col.c-claim{width:10%}col.c-statement{width:23%}col.c-published{width:16%}
col.c-ours{width:17%}col.c-tolerance{width:18%}col.c-holds{width:16%}
table.claims tr.miss{background:#fff3f3}
.yes{color:#17701f;font-weight:600}.no{color:#b3001b;font-weight:700}
.reason{color:#5c0010;font-size:12px;margin-top:2px}
.control{color:#555;font-size:12px;font-style:italic;margin-top:2px}
a.fig{font-size:11.5px}
table.refs td{max-width:640px}
code{font:12.5px/1.3 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#f3f3f3;
 padding:0 3px;border-radius:3px;overflow-wrap:anywhere}
pre{overflow-x:auto;background:#f6f6f6;padding:8px}
img{max-width:100%;height:auto;display:block;background:#fff}
.figures{display:flex;flex-wrap:wrap;gap:10px 16px;align-items:flex-start}
figure{margin:6px 0;max-width:100%;min-width:0}
.figscroll{overflow-x:auto;max-width:100%}
.figscroll img{max-width:none}
math{font-size:1.08em;max-width:100%;overflow-x:auto;overflow-y:hidden;vertical-align:middle}
math:not([display=block]){display:inline-block}
figcaption{font-size:12px;color:#555;margin-top:2px}
nav.toc{background:#f6f8fb;border:1px solid #dde3ec;padding:6px 16px 8px;margin:12px 0}
nav.toc h2{border:0;margin:6px 0;font-size:17px}
nav.toc ol{margin:4px 0;padding-left:22px}
nav.sub ol{display:flex;flex-wrap:wrap;list-style:none;padding:0;margin:1px 0 7px;font-size:13px}
nav.sub li+li::before{content:"·";color:#888;padding:0 7px}
.top{font-size:12.5px;text-align:right;margin:4px 0}
"""
