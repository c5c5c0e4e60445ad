//! A static HTML page: summary tables, the charts, and the worst mistakes with thumbnails.

use std::fmt::Write;

/// One mistake for the page.
pub struct Mistake {
    /// Thumbnail path relative to the page.
    pub thumb: String,
    /// The photo it came from.
    pub source: String,
    /// Truth.
    pub truth: String,
    /// The door's decision.
    pub decision: String,
    /// Score.
    pub score: f32,
    /// Whether a synthetic mask was drawn.
    pub masked: bool,
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page: `summary` rows (label, value), images, then each group of mistakes.
pub fn page(
    title: &str,
    summary: &[(String, String)],
    images: &[&str],
    groups: &[(&str, Vec<Mistake>)],
) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>\
         body{{font-family:sans-serif;margin:2em}} td,th{{padding:2px 8px;text-align:left}}\
         .m{{display:inline-block;width:150px;margin:4px;font-size:12px;vertical-align:top}}\
         .m img{{width:112px;height:112px;image-rendering:pixelated}}</style></head><body><h1>{t}</h1><table>",
        t = esc(title)
    );
    for (k, v) in summary {
        let _ = write!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    h.push_str("</table>");
    for img in images {
        let _ = write!(h, "<p><img src=\"{}\"></p>", esc(img));
    }
    for (name, list) in groups {
        let _ = write!(h, "<h2>{} ({})</h2>", esc(name), list.len());
        if list.is_empty() {
            h.push_str("<p>none</p>");
        }
        for m in list {
            let _ = write!(
                h,
                "<div class=\"m\"><img src=\"{}\"><br>{}<br>truth: {}<br>door: {}<br>score {:.3}{}</div>",
                esc(&m.thumb),
                esc(&m.source),
                esc(&m.truth),
                esc(&m.decision),
                m.score,
                if m.masked { " (masked)" } else { "" }
            );
        }
    }
    h.push_str("</body></html>\n");
    h
}
