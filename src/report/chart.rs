//! The report's charts, drawn with `plotters` into inline SVG: sends per second against the
//! `qps` line with throttle bans, outages and the run's end marked, and latency percentiles.
//!
//! The SVG holds only numbers and our own labels (clock times, series names); nothing from the
//! input or the gateway is drawn into it.

use chrono::{DateTime, FixedOffset};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::timeline::{MarkKind, Timeline};

/// Drawing size; the page scales it to its width (the SVG has a viewBox).
const SIZE: (u32, u32) = (960, 300);
const FONT: &str = "sans-serif";

const SENDS: RGBColor = RGBColor(31, 119, 180);
const QPS: RGBColor = RGBColor(90, 90, 90);
const THROTTLED: RGBColor = RGBColor(214, 39, 40);
const OUTAGE: RGBColor = RGBColor(148, 103, 189);
const HALT: RGBColor = RGBColor(0, 0, 0);
const P50: RGBColor = RGBColor(44, 160, 44);
const P90: RGBColor = RGBColor(255, 127, 14);
const P99: RGBColor = RGBColor(214, 39, 40);

/// A chart could not be drawn (a plotting error; never expected with the SVG backend).
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the {chart} chart: {message}")]
pub(crate) struct ChartError {
    chart: &'static str,
    message: String,
}

/// How a run ended, as marked at the right edge of its rate chart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EndMark {
    /// Halted: a fatal answer, a limit, a long ban or outage.
    Halted,
    Interrupted,
    /// Stopped without recording its end (killed).
    Aborted,
}

impl EndMark {
    fn label(self) -> &'static str {
        match self {
            EndMark::Halted => "halted",
            EndMark::Interrupted => "interrupted",
            EndMark::Aborted => "stopped (killed?)",
        }
    }
}

/// The chart being drawn: the run's seconds across, the measured value up.
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// What drawing into an SVG chart can fail with.
type DrawError = DrawingAreaErrorKind<std::io::Error>;

/// Requests per second over the run, the `qps` line, throttle and outage marks, the end mark.
pub(crate) fn rate(
    timeline: &Timeline,
    qps: Option<f64>,
    end: Option<EndMark>,
) -> Result<String, ChartError> {
    let w = timeline.width;
    let rates: Vec<(f64, f64)> = timeline
        .bins
        .iter()
        .enumerate()
        .map(|(i, b)| ((i as f64 + 0.5) * w, b.sends as f64 / w))
        .collect();
    let highest = rates
        .iter()
        .map(|(_, r)| *r)
        .fold(qps.unwrap_or(0.0), f64::max);
    // Headroom above the data for the legend.
    let top = (highest * 1.5).max(1.0);
    let span = timeline.span;
    let axes = Axes {
        chart: "rate",
        y_desc: "requests per second",
        top,
    };
    draw(timeline, axes, |chart| {
        for kind in [MarkKind::Throttle, MarkKind::Outage] {
            let (color, label) = match kind {
                MarkKind::Throttle => (THROTTLED, "throttled (flow control)"),
                MarkKind::Outage => (OUTAGE, "gateway unreachable"),
            };
            let spans: Vec<_> = timeline.marks.iter().filter(|m| m.kind == kind).collect();
            if spans.is_empty() {
                continue;
            }
            chart
                .draw_series(spans.iter().map(|m| {
                    Rectangle::new([(m.from, 0.0), (m.to, top)], color.mix(0.15).filled())
                }))?
                .label(label)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 16, y + 5)], color.mix(0.3).filled())
                });
        }
        let throttled: Vec<_> = timeline
            .bins
            .iter()
            .enumerate()
            .filter(|(_, b)| b.throttled > 0)
            .map(|(i, b)| {
                let x = i as f64 * w;
                Rectangle::new(
                    [(x, 0.0), (x + w, b.throttled as f64 / w)],
                    THROTTLED.filled(),
                )
            })
            .collect();
        if !throttled.is_empty() {
            chart
                .draw_series(throttled)?
                .label("throttled answers per second")
                .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], THROTTLED.filled()));
        }
        chart
            .draw_series(LineSeries::new(rates, SENDS.stroke_width(2)))?
            .label("requests per second (all answers)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], SENDS.stroke_width(2)));
        if let Some(qps) = qps {
            chart
                .draw_series(DashedLineSeries::new(
                    [(0.0, qps), (span, qps)],
                    8,
                    5,
                    QPS.stroke_width(2),
                ))?
                .label(format!("qps {}", number(qps)))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], QPS.stroke_width(2)));
        }
        if let Some(end) = end {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(span, 0.0), (span, top)],
                    HALT.stroke_width(3),
                )))?
                .label(end.label())
                .legend(|(x, y)| {
                    PathElement::new(vec![(x + 8, y - 6), (x + 8, y + 6)], HALT.stroke_width(3))
                });
        }
        Ok(())
    })
}

/// p50, p90 and p99 latency per bin of the answers that were not throttled.
pub(crate) fn latency(timeline: &Timeline) -> Result<String, ChartError> {
    let w = timeline.width;
    let line = |pick: fn(&super::timeline::Bin) -> Option<f64>| -> Vec<(f64, f64)> {
        timeline
            .bins
            .iter()
            .enumerate()
            .filter_map(|(i, b)| pick(b).map(|ms| ((i as f64 + 0.5) * w, ms)))
            .collect()
    };
    let series = [
        ("p50", P50, line(|b| b.p50)),
        ("p90", P90, line(|b| b.p90)),
        ("p99", P99, line(|b| b.p99)),
    ];
    let highest = series[2].2.iter().map(|(_, ms)| *ms).fold(0.0, f64::max);
    let axes = Axes {
        chart: "latency",
        y_desc: "latency (ms)",
        top: (highest * 1.4).max(10.0),
    };
    draw(timeline, axes, |chart| {
        for (name, color, points) in series {
            // A lone point draws no line: mark every point too.
            let dots: Vec<_> = points
                .iter()
                .map(|&p| Circle::new(p, 2, color.filled()))
                .collect();
            chart.draw_series(dots)?;
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
        }
        Ok(())
    })
}

/// The vertical axis of a chart, and the chart's name for errors.
struct Axes {
    chart: &'static str,
    y_desc: &'static str,
    top: f64,
}

/// Draws one chart into an SVG string: a white page, the run's clock times across, `axes`
/// from 0 to its top, the series `series` draws, and their legend at the upper right.
fn draw(
    timeline: &Timeline,
    axes: Axes,
    series: impl FnOnce(&mut Chart<'_, '_>) -> Result<(), DrawError>,
) -> Result<String, ChartError> {
    let fail = |e: DrawError| ChartError {
        chart: axes.chart,
        message: e.to_string(),
    };
    let span = timeline.span;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(fail)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..span, 0f64..axes.top)
            .map_err(fail)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(x_labels(timeline))
            .y_labels(6)
            .light_line_style(TRANSPARENT)
            .x_label_formatter(&|x| clock(&timeline.start, *x, span))
            .y_desc(axes.y_desc)
            .label_style((FONT, 15))
            .draw()
            .map_err(fail)?;
        series(&mut chart).map_err(fail)?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(QPS)
            .draw()
            .map_err(fail)?;
        root.present().map_err(fail)?;
    }
    Ok(svg)
}

/// At most 8 time labels, and not more than there are bins (labels closer than a second would
/// repeat the same clock time).
fn x_labels(timeline: &Timeline) -> usize {
    (timeline.span / timeline.width).clamp(2.0, 8.0) as usize + 1
}

/// The clock time `seconds` after `start`, in the run's own offset; with the date when the run
/// spans more than a day.
fn clock(start: &DateTime<FixedOffset>, seconds: f64, span: f64) -> String {
    let at = *start + chrono::Duration::milliseconds((seconds * 1000.0) as i64);
    if span > 86_400.0 {
        at.format("%m-%d %H:%M").to_string()
    } else {
        at.format("%H:%M:%S").to_string()
    }
}

/// A number without a needless fraction.
pub(crate) fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::timeline::{Bin, Mark};

    fn timeline() -> Timeline {
        let bin = |sends, throttled, p50| Bin {
            sends,
            throttled,
            p50,
            p90: p50.map(|p| p * 2.0),
            p99: p50.map(|p| p * 3.0),
            ..Bin::default()
        };
        Timeline {
            start: DateTime::parse_from_rfc3339("2026-11-22T10:00:00+08:00").unwrap(),
            span: 4.0,
            width: 1.0,
            bins: vec![
                bin(50, 0, Some(80.0)),
                bin(60, 20, Some(90.0)),
                bin(0, 0, None),
                bin(40, 0, Some(70.0)),
            ],
            marks: vec![
                Mark {
                    kind: MarkKind::Throttle,
                    from: 1.0,
                    to: 2.0,
                },
                Mark {
                    kind: MarkKind::Outage,
                    from: 2.0,
                    to: 3.0,
                },
            ],
        }
    }

    #[test]
    fn the_rate_chart_shows_sends_the_qps_line_throttling_outages_and_the_halt() {
        let svg = rate(&timeline(), Some(50.0), Some(EndMark::Halted)).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        for label in [
            "requests per second",
            "qps 50",
            "throttled",
            "gateway unreachable",
            "halted",
            "10:00:02",
        ] {
            assert!(svg.contains(label), "{label} missing");
        }
        assert!(svg.contains("<polyline"), "no line drawn");
    }

    #[test]
    fn the_latency_chart_has_three_percentile_lines() {
        let svg = latency(&timeline()).unwrap();
        for label in ["p50", "p90", "p99", "latency (ms)"] {
            assert!(svg.contains(label), "{label} missing");
        }
        assert!(svg.matches("<polyline").count() >= 3);
    }

    #[test]
    fn clock_labels_use_the_runs_offset_and_add_the_date_for_long_runs() {
        let start = DateTime::parse_from_rfc3339("2026-11-22T23:59:00+08:00").unwrap();
        assert_eq!(clock(&start, 90.0, 100.0), "00:00:30");
        assert_eq!(clock(&start, 90.0, 200_000.0), "11-23 00:00");
        assert_eq!(number(50.0), "50");
        assert_eq!(number(0.5), "0.50");
    }
}
