--- The style of the judging sections (the candidates' rows that open on a
--- click, diffs, the evolution tree), added to the html page's own; it uses
--- the page's colour variables, so it follows light and dark mode.
return [[
.cand-row{display:grid;grid-template-columns:3.5em 6.5em minmax(8em,1fr) 5.5em 10.5em 12em 11em;gap:0 10px;align-items:baseline;padding:5px 8px;border-bottom:1px solid var(--po-border);font-size:13px}
.cand-row>span{min-width:0;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.cand-head{color:var(--po-muted);font-weight:600;font-size:12px}
summary.cand-row{cursor:pointer;list-style:none}
summary.cand-row::-webkit-details-marker{display:none}
summary.cand-row::before{content:"\25B8";position:absolute;margin-left:-12px;color:var(--po-muted)}
.cand[open]>summary.cand-row::before{content:"\25BE"}
summary.cand-row:hover,.cand[open]>summary{background:var(--po-bg)}
.cand.accepted>summary{font-weight:650}
.cand-body{padding:6px 12px 12px;border-bottom:1px solid var(--po-border)}
.cand-body p{margin:4px 0}
.cand-body h4{font-size:12px;font-weight:600;margin:10px 0 4px;color:var(--po-muted)}
.cand-body .out-head{color:var(--po-muted);font-size:12px;margin:8px 0 2px}
.cand-body pre{margin:0;max-height:420px;overflow:auto;padding:8px;border-radius:6px;background:var(--po-bg);font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:pre}
.diff .add{color:var(--po-ok)}
.diff .del{color:var(--po-bad)}
.diff .hunk{color:var(--po-c5)}
.diff .fh{color:var(--po-muted)}
.badge.v-faster,.chip.faster,.tnode.faster{color:var(--po-ok);background:var(--po-ok-bg)}
.badge.v-failed,.chip.failed,.tnode.failed{color:var(--po-bad);background:var(--po-bad-bg)}
.badge.v-same,.chip.same,.tnode.same{color:var(--po-run);background:var(--po-run-bg)}
.badge.v-slower,.chip.slower,.tnode.slower{color:var(--po-fg);background:var(--po-grid)}
.badge.v-unusable,.chip.unusable,.tnode.unusable{color:var(--po-muted);background:transparent;border:1px dashed var(--po-border)}
ul.tree,ul.tree ul{list-style:none;margin:0;padding:0}
ul.tree ul{margin:2px 0 2px 8px;padding-left:14px;border-left:1px solid var(--po-border)}
ul.tree li{margin:3px 0}
ul.tree li.path>ul{border-left:2px solid var(--po-c3)}
ul.tree a{color:inherit;text-decoration:none}
.tnode{display:inline-block;padding:1px 8px;border-radius:6px;border:1px solid var(--po-border);font-size:13px}
.tnode.on-path{border:2px solid var(--po-c3);font-weight:700}
.leaves{display:flex;flex-wrap:wrap;gap:4px;align-items:baseline}
.tcycle{color:var(--po-muted);font-size:11px;min-width:4.5em}
.chip{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;border:1px solid transparent}
.chip.on-path{border:2px solid var(--po-c3);font-weight:700}
]]
