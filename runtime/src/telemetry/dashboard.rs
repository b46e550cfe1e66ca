//! The dashboard at `/` on the admin address: the app, its groups and
//! versions, the call graph as an SVG that weft draws itself, and the
//! per-method table of the last minute (pure: a [`View`] in, HTML out).
//!
//! The page has no scripts or fonts from elsewhere. An inline script
//! fetches `/dashboard` (the [`fragment`]) every two seconds and swaps it
//! in, so the numbers stay live without reloading the page.

use super::window::CallRate;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// What the dashboard shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    /// The app's name.
    pub app: String,
    /// The versions running, with their share of new requests in percent.
    pub versions: Vec<(String, u8)>,
    /// The groups, in order.
    pub groups: Vec<GroupView>,
    /// The calls of the last minute.
    pub calls: Vec<CallRate>,
}

/// One group of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupView {
    /// Its name.
    pub name: String,
    /// Its components.
    pub components: Vec<String>,
    /// How many replicas run, and how many of them are healthy.
    pub replicas: usize,
    /// Of those, the healthy ones.
    pub healthy: usize,
}

/// The whole page: its frame, the first fragment, and the script that
/// refreshes it.
pub fn page(view: &View) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>weft: {app}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; margin: .5em 0 1.5em; }}
th, td {{ padding: .2em .8em; border-bottom: 1px solid #ddd; text-align: left; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
svg text {{ font: 12px system-ui, sans-serif; }}
.remote {{ stroke-dasharray: 6 4; }}
</style></head>
<body><main id="dashboard">{fragment}</main>
<script>
setInterval(async () => {{
  try {{
    const r = await fetch('/dashboard');
    if (r.ok) {{
      document.getElementById('dashboard').innerHTML = await r.text();
      document.body.dataset.refreshes = Number(document.body.dataset.refreshes || 0) + 1;
    }}
  }} catch (e) {{}}
}}, 2000);
</script>
</body></html>
"#,
        app = escape(&view.app),
        fragment = fragment(view)
    )
}

/// The live part of the page.
pub fn fragment(view: &View) -> String {
    let mut out = String::new();
    let versions: Vec<String> = view
        .versions
        .iter()
        .map(|(v, w)| format!("<code>{}</code> ({w} %)", escape(v)))
        .collect();
    let _ = write!(
        out,
        "<h1>{}</h1><p id=\"versions\">versions: {}</p>",
        escape(&view.app),
        versions.join(", ")
    );
    out.push_str("<h2>Groups</h2><table id=\"groups\"><tr><th>group</th><th>components</th><th>replicas</th></tr>");
    for g in &view.groups {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{} of {} healthy</td></tr>",
            escape(&g.name),
            escape(&g.components.join(", ")),
            g.healthy,
            g.replicas
        );
    }
    out.push_str("</table><h2>Call graph</h2>");
    out.push_str(&graph(view));
    out.push_str("<h2>Calls, last minute</h2><table id=\"calls\"><tr><th>caller</th><th>callee</th><th>method</th><th>where</th><th>calls/s</th><th>errors</th><th>p50 ms</th><th>p99 ms</th></tr>");
    for c in &view.calls {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{:.1}</td><td class=\"n\">{:.1} %</td><td class=\"n\">{:.3}</td><td class=\"n\">{:.3}</td></tr>",
            escape(&c.key.caller),
            escape(&c.key.component),
            escape(&format!("{}#{}", c.key.interface, c.key.method)),
            if c.key.remote { "remote" } else { "local" },
            c.calls_per_s,
            c.error_pct,
            c.p50_ms,
            c.p99_ms
        );
    }
    out.push_str("</table>");
    out
}

/// Node width and height, and the gaps between them.
const NODE_W: usize = 150;
const NODE_H: usize = 36;
const GAP_X: usize = 160;
const GAP_Y: usize = 40;
const MARGIN: usize = 30;

/// The call graph: a column per group, a box per component, and an arrow
/// per caller and callee, as thick as its calls per second (log scale),
/// dashed when the calls cross processes, labelled with the rate.
pub fn graph(view: &View) -> String {
    // Where each component's box is.
    let mut at: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut height = 0;
    for (column, group) in view.groups.iter().enumerate() {
        let x = MARGIN + column * (NODE_W + GAP_X);
        for (row, component) in group.components.iter().enumerate() {
            let y = MARGIN + 20 + row * (NODE_H + GAP_Y);
            at.insert(component, (x, y));
            height = height.max(y + NODE_H + MARGIN);
        }
    }
    let width = MARGIN * 2 + view.groups.len() * (NODE_W + GAP_X);
    let mut svg = format!(
        "<svg id=\"graph\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerUnits=\"userSpaceOnUse\" markerWidth=\"10\" markerHeight=\"10\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#555\"/></marker></defs>"
    );
    for (column, group) in view.groups.iter().enumerate() {
        let x = MARGIN + column * (NODE_W + GAP_X);
        let _ = write!(
            svg,
            "<text x=\"{x}\" y=\"{}\" fill=\"#777\">group {}</text>",
            MARGIN + 8,
            escape(&group.name)
        );
    }
    // One edge per caller and callee, adding up their methods.
    let mut edges: BTreeMap<(&str, &str), (f64, bool)> = BTreeMap::new();
    for c in &view.calls {
        let edge = edges
            .entry((c.key.caller.as_str(), c.key.component.as_str()))
            .or_insert((0.0, false));
        edge.0 += c.calls_per_s;
        edge.1 |= c.key.remote;
    }
    for ((caller, callee), (rate, remote)) in &edges {
        let (Some(&(x1, y1)), Some(&(x2, y2))) = (at.get(caller), at.get(callee)) else {
            continue;
        };
        let (from, to) = endpoints((x1, y1), (x2, y2));
        let thickness = 1.0 + (1.0 + rate).log10() * 2.0;
        let _ = write!(
            svg,
            "<g class=\"edge\" data-caller=\"{}\" data-callee=\"{}\" data-where=\"{}\" data-rate=\"{rate:.1}\">\
             <line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#555\" stroke-width=\"{thickness:.1}\" marker-end=\"url(#arrow)\"{}/>\
             <text x=\"{}\" y=\"{}\" fill=\"#333\" text-anchor=\"middle\">{rate:.1}/s {}</text></g>",
            escape(caller),
            escape(callee),
            if *remote { "remote" } else { "local" },
            from.0,
            from.1,
            to.0,
            to.1,
            if *remote { " class=\"remote\"" } else { "" },
            (from.0 + to.0) / 2,
            (from.1 + to.1) / 2 - 8,
            if *remote { "remote" } else { "local" }
        );
    }
    let callers: BTreeSet<&str> = view.calls.iter().map(|c| c.key.caller.as_str()).collect();
    for (component, (x, y)) in &at {
        let fill = if callers.contains(component) {
            "#eef4ff"
        } else {
            "#f4f4f4"
        };
        let _ = write!(
            svg,
            "<g class=\"node\" data-component=\"{name}\"><rect x=\"{x}\" y=\"{y}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"6\" fill=\"{fill}\" stroke=\"#888\"/>\
             <text x=\"{tx}\" y=\"{ty}\" text-anchor=\"middle\">{name}</text></g>",
            name = escape(component),
            tx = x + NODE_W / 2,
            ty = y + NODE_H / 2 + 4
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Where an arrow between two boxes starts and ends: the facing sides.
fn endpoints(a: (usize, usize), b: (usize, usize)) -> ((usize, usize), (usize, usize)) {
    let mid = |p: (usize, usize)| (p.0 + NODE_W / 2, p.1 + NODE_H / 2);
    let (ma, mb) = (mid(a), mid(b));
    if a.0 + NODE_W <= b.0 {
        ((a.0 + NODE_W, ma.1), (b.0, mb.1))
    } else if b.0 + NODE_W <= a.0 {
        ((a.0, ma.1), (b.0 + NODE_W, mb.1))
    } else if a.1 < b.1 {
        ((ma.0, a.1 + NODE_H), (mb.0, b.1))
    } else {
        ((ma.0, a.1), (mb.0, b.1 + NODE_H))
    }
}

/// Text made safe inside HTML and SVG.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(remote: bool) -> View {
        let groups = if remote {
            vec![
                GroupView {
                    name: "frontend".into(),
                    components: vec!["frontend".into()],
                    replicas: 1,
                    healthy: 1,
                },
                GroupView {
                    name: "greeter".into(),
                    components: vec!["greeter".into()],
                    replicas: 2,
                    healthy: 2,
                },
            ]
        } else {
            vec![GroupView {
                name: "main".into(),
                components: vec!["frontend".into(), "greeter".into()],
                replicas: 1,
                healthy: 1,
            }]
        };
        View {
            app: "hello".into(),
            versions: vec![("abc".into(), 100)],
            groups,
            calls: vec![CallRate {
                key: crate::telemetry::metrics::examples::greet("frontend", remote),
                calls_per_s: 12.5,
                error_pct: 0.0,
                p50_ms: 0.8,
                p99_ms: 2.4,
            }],
        }
    }

    #[test]
    fn a_remote_edge_is_dashed_and_labelled_with_its_rate() {
        let svg = graph(&hello(true));
        assert!(svg.contains(r#"data-caller="frontend" data-callee="greeter" data-where="remote" data-rate="12.5""#), "{svg}");
        assert!(svg.contains(r#"class="remote""#));
        assert!(svg.contains("12.5/s remote"));
        assert_eq!(svg.matches("class=\"node\"").count(), 2);
    }

    #[test]
    fn a_local_edge_is_solid() {
        let svg = graph(&hello(false));
        assert!(svg.contains(r#"data-where="local""#), "{svg}");
        assert!(!svg.contains(r#"class="remote""#));
    }

    #[test]
    fn the_page_refreshes_itself_and_loads_nothing_from_elsewhere() {
        let page = page(&hello(true));
        assert!(page.contains("fetch('/dashboard')"));
        // The only address in it is the SVG namespace's name.
        assert_eq!(
            page.matches("http").count(),
            page.matches("http://www.w3.org/2000/svg").count()
        );
        assert!(!page.contains("<script src") && !page.contains("<link"));
        assert!(page.contains("2 of 2 healthy"));
    }

    #[test]
    fn names_are_escaped() {
        let mut view = hello(true);
        view.app = "<b>&".into();
        assert!(fragment(&view).contains("&lt;b&gt;&amp;"));
    }
}
