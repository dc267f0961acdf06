//! Hand-written SVG latency plot in the manner of Jepsen's `latency-raw.png`: one mark per completed operation
//! (x = seconds since the start, y = latency on a log10 scale), coloured by outcome and shaped by `f`, over
//! translucent bands for nemesis activity. No plotting crate: the output is plain text, deterministic for equal
//! inputs, and bounded to [`POINTS_MAX`] marks so a long run still gives a file a browser opens quickly.

use std::collections::{BTreeMap, BTreeSet};

/// Most marks drawn; beyond this, points are thinned deterministically (see [`decimate`]).
pub const POINTS_MAX: usize = 20_000;
const WIDTH: u32 = 1000;
const HEIGHT: u32 = 500;
const PLOT_LEFT: f64 = 70.0;
const PLOT_RIGHT: f64 = 850.0;
const PLOT_TOP: f64 = 40.0;
const PLOT_BOTTOM: f64 = 450.0;
const LEGEND_X: f64 = 865.0;
const LEGEND_ROW: f64 = 16.0;
/// Most nemesis names listed in the legend.
const LEGEND_NEMESES_MAX: usize = 12;
/// The y axis spans 1 ms up to at most 10^DECADES_MAX ms (~2.8 h); slower operations are drawn at the top.
const DECADES_MAX: u32 = 7;
/// Most x-axis tick intervals.
const X_TICKS_MAX: u64 = 10;
/// Half the size of a mark, px.
const MARK_R: f64 = 2.5;
const POINT_OPACITY: f64 = 0.6;
const WINDOW_OPACITY: f64 = 0.15;
/// Nemesis labels cycle through this many rows so overlapping windows stay readable.
const LABEL_ROWS: usize = 3;
/// Nemesis colours keyed by name (first key contained in `f`, so "start-partition" is a partition).
const NEMESIS_COLOURS: [(&str, &str); 6] = [
    ("partition", "#9467bd"),
    ("kill", "#8c564b"),
    ("pause", "#e377c2"),
    ("clock", "#17becf"),
    ("loss", "#bcbd22"),
    ("disk", "#7f7f7f"),
];
/// Colours for other nemesis names, picked by an FNV-1a hash of the name.
const FALLBACK_COLOURS: [&str; 4] = ["#2ca02c", "#ff9896", "#aec7e8", "#c49c94"];

/// How an operation completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    Ok,
    Fail,
    Info,
}

impl Outcome {
    /// Drawing order: rarer outcomes last, i.e. on top.
    const LAYERS: [Outcome; 3] = [Outcome::Ok, Outcome::Info, Outcome::Fail];

    /// (name, mark colour).
    fn style(self) -> (&'static str, &'static str) {
        match self {
            Outcome::Ok => ("ok", "#1f77b4"),
            Outcome::Fail => ("fail", "#d62728"),
            Outcome::Info => ("info", "#ff7f0e"),
        }
    }
}

/// One completed operation: when it was invoked, how long it took, what it was and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Point {
    pub t_ms: u64,
    pub latency_ms: u64,
    pub f: String,
    pub outcome: Outcome,
}

/// A nemesis fault active from `start_ms` to `stop_ms` (the run's end if it was never healed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub f: String,
    pub start_ms: u64,
    pub stop_ms: u64,
}

/// The plot as a standalone SVG document. `end_ms` is the run's length; the x axis stretches to cover any point
/// or window beyond it.
pub fn latency_svg(title: &str, points: &[Point], windows: &[Window], end_ms: u64) -> String {
    let span_ms = points
        .iter()
        .map(|p| p.t_ms)
        .chain(windows.iter().flat_map(|w| [w.start_ms, w.stop_ms]))
        .fold(end_ms.max(1), u64::max);
    let x_of = |t_ms: u64| PLOT_LEFT + (PLOT_RIGHT - PLOT_LEFT) * t_ms as f64 / span_ms as f64;
    let decades = decades_for(points.iter().map(|p| p.latency_ms).max().unwrap_or(1));
    let kept = decimate(points);
    let (w, h, plot_w, plot_h) = (WIDTH, HEIGHT, PLOT_RIGHT - PLOT_LEFT, PLOT_BOTTOM - PLOT_TOP);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n\
         <text x=\"{:.1}\" y=\"24\" font-size=\"16\" text-anchor=\"middle\">{}</text>\n<text x=\"{PLOT_RIGHT}\" \
         y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">{} ops, {} drawn</text>\n<g class=\"windows\">\n",
        PLOT_LEFT + plot_w / 2.0,
        escape(title),
        PLOT_TOP - 4.0,
        points.len(),
        kept.len()
    );

    // Nemesis bands behind everything else (zero-length ones still get 1 px); their labels go above the points.
    let names: Vec<&str> = windows.iter().map(|w| w.f.as_str()).collect::<BTreeSet<_>>().into_iter().collect();
    let mut labels =
        String::from("<g class=\"window-labels\" stroke=\"white\" stroke-width=\"3\" paint-order=\"stroke\">\n");
    for window in windows {
        let (x0, x1) = (x_of(window.start_ms.min(window.stop_ms)), x_of(window.start_ms.max(window.stop_ms)));
        let colour = nemesis_colour(&window.f);
        let row = names.iter().position(|n| *n == window.f).unwrap_or(0) % LABEL_ROWS;
        out.push_str(&format!(
            "<rect class=\"window\" x=\"{x0:.1}\" y=\"{PLOT_TOP}\" width=\"{:.1}\" height=\"{plot_h}\" \
             fill=\"{colour}\" fill-opacity=\"{WINDOW_OPACITY}\"/>\n",
            (x1 - x0).max(1.0)
        ));
        labels.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{colour}\">{}</text>\n",
            x0 + 2.0,
            PLOT_TOP + 12.0 * (row as f64 + 1.0),
            escape(&window.f)
        ));
    }
    out.push_str("</g>\n<g class=\"axes\" stroke=\"#ddd\">\n");

    // Axes: decade grid lines on y, 1-2-5 ticks in seconds on x.
    for d in 0..=decades {
        let y = y_of(10u64.pow(d), decades);
        out.push_str(&format!(
            "<line x1=\"{PLOT_LEFT}\" y1=\"{y:.1}\" x2=\"{PLOT_RIGHT}\" y2=\"{y:.1}\"/>\n<text x=\"{:.1}\" \
             y=\"{:.1}\" stroke=\"none\" text-anchor=\"end\">{}</text>\n",
            PLOT_LEFT - 4.0,
            y + 4.0,
            10u64.pow(d)
        ));
    }
    let step = tick_step_ms(span_ms);
    let decimals = [1000, 100, 10].iter().position(|&unit| step.is_multiple_of(unit)).unwrap_or(3);
    for t_ms in (0..=span_ms).step_by(step as usize) {
        out.push_str(&format!(
            "<line x1=\"{x:.1}\" y1=\"{PLOT_BOTTOM}\" x2=\"{x:.1}\" y2=\"{:.1}\"/>\n<text x=\"{x:.1}\" \
             y=\"{:.1}\" stroke=\"none\" text-anchor=\"middle\">{:.*}</text>\n",
            PLOT_BOTTOM + 4.0,
            PLOT_BOTTOM + 16.0,
            decimals,
            t_ms as f64 / 1000.0,
            x = x_of(t_ms)
        ));
    }
    out.push_str(&format!(
        "<rect class=\"frame\" x=\"{PLOT_LEFT}\" y=\"{PLOT_TOP}\" width=\"{plot_w}\" height=\"{plot_h}\" \
         fill=\"none\" stroke=\"#333\"/>\n<g stroke=\"none\" text-anchor=\"middle\"><text x=\"{:.1}\" y=\"{:.1}\">\
         time (s)</text>\n<text transform=\"translate(16 {:.1}) rotate(-90)\">latency (ms)</text></g>\n</g>\n",
        PLOT_LEFT + plot_w / 2.0,
        PLOT_BOTTOM + 36.0,
        PLOT_TOP + plot_h / 2.0
    ));

    // Points, one group per outcome, rarer outcomes on top.
    for outcome in Outcome::LAYERS {
        let (name, colour) = outcome.style();
        out.push_str(&format!("<g class=\"points-{name}\" fill=\"{colour}\" fill-opacity=\"{POINT_OPACITY}\">\n"));
        for p in kept.iter().filter(|p| p.outcome == outcome) {
            out.push_str(&mark(&p.f, x_of(p.t_ms), y_of(p.latency_ms, decades)));
        }
        out.push_str("</g>\n");
    }
    out.push_str(&labels);
    out.push_str("</g>\n");

    // Legend rows: fill colour, Some(f) for an operation mark or None for a nemesis band swatch, label.
    let mut rows: Vec<(&str, Option<&str>, String)> = Vec::new();
    rows.extend(Outcome::LAYERS.map(|o| (o.style().1, Some("send"), o.style().0.to_owned())));
    rows.extend([("send", "send"), ("poll", "poll"), ("", "other f")].map(|(f, l)| ("#555", Some(f), l.to_owned())));
    rows.extend(names.iter().take(LEGEND_NEMESES_MAX).map(|n| (nemesis_colour(n), None, (*n).to_owned())));
    if names.len() > LEGEND_NEMESES_MAX {
        rows.push(("none", None, format!("+{} more", names.len() - LEGEND_NEMESES_MAX)));
    }
    out.push_str("<g class=\"legend\">\n");
    for (i, (colour, f, label)) in rows.iter().enumerate() {
        let y = PLOT_TOP + LEGEND_ROW * (i as f64 + 1.0);
        let swatch = match f {
            Some(f) => mark(f, LEGEND_X + 3.0, y - 4.0),
            None => format!(
                "<rect x=\"{}\" y=\"{}\" width=\"8\" height=\"8\" fill-opacity=\"0.5\"/>",
                LEGEND_X - 1.0,
                y - 8.0
            ),
        };
        out.push_str(&format!(
            "<g fill=\"{colour}\">{swatch}</g>\n<text x=\"{:.1}\" y=\"{y:.1}\">{}</text>\n",
            LEGEND_X + 12.0,
            escape(label)
        ));
    }
    out.push_str("</g>\n</svg>\n");
    out
}

/// y pixel for a latency: log10 scale from 1 ms (bottom) to 10^decades ms (top), clamped to both.
fn y_of(latency_ms: u64, decades: u32) -> f64 {
    let level = (latency_ms.max(1) as f64).log10().min(f64::from(decades));
    PLOT_BOTTOM - (PLOT_BOTTOM - PLOT_TOP) * level / f64::from(decades)
}

/// Decades needed to show `max_latency_ms`: at least 1, at most [`DECADES_MAX`].
fn decades_for(max_latency_ms: u64) -> u32 {
    (1..DECADES_MAX).find(|&d| 10u64.pow(d) >= max_latency_ms).unwrap_or(DECADES_MAX)
}

/// Smallest 1-2-5 step (ms) that cuts `span_ms` into at most [`X_TICKS_MAX`] intervals.
fn tick_step_ms(span_ms: u64) -> u64 {
    let mut magnitude: u64 = 1;
    loop {
        if let Some(step) = [1, 2, 5].map(|m| m * magnitude).into_iter().find(|s| span_ms.div_ceil(*s) <= X_TICKS_MAX) {
            return step;
        }
        match magnitude.checked_mul(10) {
            Some(next) if next.checked_mul(5).is_some() => magnitude = next,
            _ => return span_ms.max(1),
        }
    }
}

/// One mark centred on (x, y): circle for send, square for poll, triangle for anything else.
fn mark(f: &str, x: f64, y: f64) -> String {
    let (r, d) = (MARK_R, 2.0 * MARK_R);
    match f {
        "send" => format!("<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{r}\"/>\n"),
        "poll" => format!("<path d=\"M{:.1},{:.1}h{d}v{d}h-{d}z\"/>\n", x - r, y - r),
        _ => format!("<path d=\"M{x:.1},{:.1}l{r},{d}h-{d}z\"/>\n", y - r),
    }
}

fn nemesis_colour(f: &str) -> &'static str {
    if let Some((_, colour)) = NEMESIS_COLOURS.iter().find(|(key, _)| f.contains(key)) {
        return colour;
    }
    let hash = f.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    FALLBACK_COLOURS[(hash % FALLBACK_COLOURS.len() as u64) as usize]
}

/// Text safe inside an element or attribute; control characters (invalid in XML 1.0) become spaces.
fn escape(s: &str) -> String {
    let clean: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    [('&', "&amp;"), ('<', "&lt;"), ('>', "&gt;"), ('"', "&quot;"), ('\'', "&apos;")]
        .iter()
        .fold(clean, |text, (c, entity)| text.replace(*c, entity))
}

/// At most [`POINTS_MAX`] points, in input order. Fail/info points are kept first (all of them unless they
/// alone exceed the limit); ok points fill the remaining budget, keeping every k-th point of each (f, outcome)
/// class with one k for all classes, the smallest that fits.
fn decimate(points: &[Point]) -> Vec<&Point> {
    let (rare, ok): (Vec<usize>, Vec<usize>) = (0..points.len()).partition(|&i| points[i].outcome != Outcome::Ok);
    let mut kept = thin(points, rare, POINTS_MAX);
    kept.extend(thin(points, ok, POINTS_MAX - kept.len()));
    kept.sort_unstable();
    assert!(kept.len() <= POINTS_MAX, "decimation kept {} points", kept.len());
    kept.into_iter().map(|i| &points[i]).collect()
}

fn thin(points: &[Point], indices: Vec<usize>, budget: usize) -> Vec<usize> {
    if indices.len() <= budget {
        return indices;
    }
    let mut classes: BTreeMap<(&str, Outcome), Vec<usize>> = BTreeMap::new();
    for i in indices {
        classes.entry((points[i].f.as_str(), points[i].outcome)).or_default().push(i);
    }
    // Binary search for the smallest stride k that fits: the kept count only falls as k grows.
    let kept_with = |k: usize| classes.values().map(|c| c.len().div_ceil(k)).sum::<usize>();
    let (mut lo, mut hi) = (1, classes.values().map(Vec::len).max().unwrap_or(1));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if kept_with(mid) <= budget { hi = mid } else { lo = mid + 1 }
    }
    let mut kept: Vec<usize> = classes.values().flat_map(|c| c.iter().copied().step_by(lo)).collect();
    kept.sort_unstable();
    kept.truncate(budget); // Only bites when there are more classes than budget.
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(t_ms: u64, latency_ms: u64, f: &str, outcome: Outcome) -> Point {
        Point { t_ms, latency_ms, f: f.to_owned(), outcome }
    }

    fn window(f: &str, start_ms: u64, stop_ms: u64) -> Window {
        Window { f: f.to_owned(), start_ms, stop_ms }
    }

    fn assert_well_formed(svg: &str) {
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"), "{svg}");
        assert_eq!(svg.matches("<g ").count() + svg.matches("<g>").count(), svg.matches("</g>").count());
        assert_eq!(svg.matches('<').count(), svg.matches('>').count());
    }

    #[test]
    fn empty_plot_is_well_formed() {
        for end_ms in [0, 1, 60_000] {
            let svg = latency_svg("empty", &[], &[], end_ms);
            assert_well_formed(&svg);
            assert!(svg.contains("0 ops, 0 drawn"));
            assert_eq!(svg.matches(&format!("fill-opacity=\"{POINT_OPACITY}\">\n</g>")).count(), 3);
        }
    }

    #[test]
    fn one_rect_per_window_escaped_labels_and_shapes() {
        let windows = [window("partition", 1_000, 5_000), window("kill", 3_000, 3_000), window("a<b&\"c\"", 0, 9_000)];
        let points =
            [point(0, 5, "send", Outcome::Ok), point(1, 5, "poll", Outcome::Fail), point(2, 5, "txn", Outcome::Info)];
        let svg = latency_svg("run <1> & 'two'", &points, &windows, 8_000);
        assert_well_formed(&svg);
        assert_eq!(svg.matches("<rect class=\"window\"").count(), windows.len());
        assert!(svg.contains("run &lt;1&gt; &amp; &apos;two&apos;"));
        assert!(svg.contains("a&lt;b&amp;&quot;c&quot;") && !svg.contains("a<b"));
        assert!(svg.contains(NEMESIS_COLOURS[0].1) && svg.contains(NEMESIS_COLOURS[1].1));
        assert_eq!(nemesis_colour("start-partition"), NEMESIS_COLOURS[0].1);
        let group = |name: &str| svg.split(&format!("points-{name}")).nth(1).unwrap().split("</g>").next().unwrap();
        assert!(group("ok").contains("<circle"));
        assert!(group("fail").contains("h5v5h-5z"));
        assert!(group("info").contains("l2.5,5h-5z"));
    }

    #[test]
    fn log_scale_and_ticks() {
        assert_eq!([0, 10, 11, u64::MAX].map(decades_for), [1, 1, 2, DECADES_MAX]);
        assert_eq!([y_of(0, 3), y_of(1_000, 3), y_of(1_000_000, 3)], [PLOT_BOTTOM, PLOT_TOP, PLOT_TOP]);
        assert!((y_of(10, 2) - (PLOT_TOP + PLOT_BOTTOM) / 2.0).abs() < 1e-9);
        assert_eq!([1, 60_000, 95_000, 101_000].map(tick_step_ms), [1, 10_000, 10_000, 20_000]);
        assert!(u64::MAX.div_ceil(tick_step_ms(u64::MAX)) <= X_TICKS_MAX);
        let svg = latency_svg("ticks", &[point(0, 4_000, "send", Outcome::Ok)], &[], 60_000);
        assert!(svg.contains(">1000</text>") && svg.contains(">10000</text>") && svg.contains(">60</text>"));
        assert!(latency_svg("ms", &[], &[], 900).contains(">0.9</text>"));
    }

    #[test]
    fn huge_counts_are_decimated_keeping_rare_points() {
        let points: Vec<Point> = (0..120_000u64)
            .map(|i| match i % 240 {
                0 => point(i, i % 3_000, "send", Outcome::Fail),
                1 => point(i, i % 3_000, "poll", Outcome::Info),
                n if n % 3 == 0 => point(i, i % 3_000, "poll", Outcome::Ok),
                _ => point(i, i % 3_000, "send", Outcome::Ok),
            })
            .collect();
        let kept = decimate(&points);
        assert!(kept.len() <= POINTS_MAX && kept.len() > POINTS_MAX * 9 / 10, "{}", kept.len());
        assert_eq!(kept.iter().filter(|p| p.outcome != Outcome::Ok).count(), 1_000);
        assert!(kept.iter().any(|p| p.f == "poll" && p.outcome == Outcome::Ok));
        assert!(kept.windows(2).all(|w| w[0].t_ms < w[1].t_ms));
        let svg = latency_svg("big", &points, &[window("pause", 10, 20)], 120_000);
        assert_well_formed(&svg);
        assert!(svg.contains(&format!("120000 ops, {} drawn", kept.len())));

        let all_fail: Vec<Point> = (0..POINTS_MAX as u64 + 7).map(|i| point(i, 1, "send", Outcome::Fail)).collect();
        assert!(decimate(&all_fail).len() <= POINTS_MAX);
        let classes: Vec<Point> =
            (0..POINTS_MAX as u64 * 2).map(|i| point(i, 1, &format!("f{i}"), Outcome::Ok)).collect();
        assert_eq!(decimate(&classes).len(), POINTS_MAX);
        assert_eq!(decimate(&all_fail[..100]).len(), 100);
    }

    #[test]
    fn output_is_deterministic() {
        let fs = ["send", "poll", "txn"];
        let points: Vec<Point> = (0..50_000u64)
            .map(|i| point(i * 3, (i * 7919) % 20_000, fs[i as usize % 3], Outcome::LAYERS[i as usize % 3]))
            .collect();
        let windows: Vec<Window> =
            ["partition", "clock", "bitflip", "disk"].iter().enumerate().map(|(i, f)| window(f, i as u64, 9)).collect();
        let a = latency_svg("det", &points, &windows, 150_000);
        assert_eq!(a, latency_svg("det", &points, &windows, 150_000));
        assert_well_formed(&a);
        assert_eq!(a.matches("<rect class=\"window\"").count(), 4);
    }
}
