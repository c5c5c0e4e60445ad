//! PNG charts for `facegate eval`: the confusion matrix and the DET curve, drawn with plotters
//! into an RGB buffer. Text uses DejaVu Sans compiled into the binary, so a chart looks the
//! same on every laptop and needs no system font lookup.

use std::sync::Once;

use anyhow::{Result, anyhow};
use image::RgbImage;
use plotters::prelude::*;
use plotters::style::FontStyle;

const FONT: &str = "sans-serif";

/// Makes the embedded DejaVu Sans the "sans-serif" font (once).
pub fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // DejaVu is a valid font; if registration failed anyway, charts still draw without
        // text, and the error surfaces as a plotters error when text is drawn.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    });
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the chart: {e:?}")
}

/// Colour of a confusion cell: truth `i`, decision `j`, `share` of the row. At a door the
/// cells that matter most are the people let in as someone else (a stranger let in, a person
/// taken for another): any such cell is a strong red however small its share, since a few
/// among thousands of stranger probes would otherwise be nearly white. Refusals of enrolled
/// people (the stranger column) are amber and lighter; right answers green.
fn cell_colour(i: usize, j: usize, stranger: Option<usize>, c: usize, share: f64) -> RGBColor {
    let fade = |k: f64, (r, g, b): (f64, f64, f64)| {
        RGBColor(
            (255.0 - (255.0 - r) * k) as u8,
            (255.0 - (255.0 - g) * k) as u8,
            (255.0 - (255.0 - b) * k) as u8,
        )
    };
    if c == 0 {
        RGBColor(255, 255, 255)
    } else if i == j {
        fade(0.15 + 0.85 * share, (55.0, 175.0, 55.0))
    } else if Some(j) == stranger {
        fade(0.2 + 0.5 * share, (245.0, 170.0, 40.0))
    } else {
        fade(0.7 + 0.3 * share, (200.0, 20.0, 20.0))
    }
}

/// A confusion matrix: rows are the truth, columns the decision (see [`cell_colour`]). The
/// label "stranger", if present, is the row of people not enrolled and the column of refusals.
pub fn confusion(labels: &[String], counts: &[Vec<usize>], title: &str) -> Result<RgbImage> {
    register_font();
    let n = labels.len();
    let cell = if n > 20 { 22 } else { 40 };
    let left = 170u32;
    let top = 170u32;
    let stranger = labels.iter().position(|l| l == "stranger");
    let (w, h) = (left + cell * n as u32 + 20, top + cell * n as u32 + 20);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let short = |s: &str| s.chars().take(20).collect::<String>();
        let font = (FONT, 13).into_font();
        root.draw(&Text::new(title.to_owned(), (8, 8), (FONT, 16).into_font()))
            .map_err(err)?;
        root.draw(&Text::new(
            "truth \u{2193} / decision \u{2192}",
            (8, 30),
            font.clone(),
        ))
        .map_err(err)?;
        confusion_key(&root, stranger)?;
        for (i, row) in counts.iter().enumerate() {
            let total: usize = row.iter().sum();
            let y = top as i32 + (i as u32 * cell) as i32;
            root.draw(&Text::new(
                short(&labels[i]),
                (8, y + cell as i32 / 2 - 7),
                font.clone(),
            ))
            .map_err(err)?;
            for (j, &c) in row.iter().enumerate() {
                let x = left as i32 + (j as u32 * cell) as i32;
                let share = if total == 0 {
                    0.0
                } else {
                    c as f64 / total as f64
                };
                let let_in = c > 0 && i != j && Some(j) != stranger;
                let colour = cell_colour(i, j, stranger, c, share);
                confusion_cell(&root, (x, y), cell, colour, c, let_in)?;
            }
        }
        for (j, label) in labels.iter().enumerate() {
            let x = left as i32 + (j as u32 * cell) as i32 + cell as i32 / 2 - 6;
            root.draw(&Text::new(
                short(label),
                (x, top as i32 - 6),
                font.clone().transform(FontTransform::Rotate270),
            ))
            .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    RgbImage::from_raw(w, h, buf).ok_or_else(|| anyhow!("chart buffer size"))
}

/// A chart being drawn into an RGB buffer.
type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// The key to the confusion matrix's colours, under its title.
fn confusion_key(root: &Area, stranger: Option<usize>) -> Result<()> {
    let font = (FONT, 13).into_font();
    for (k, (colour, what)) in [
        (
            cell_colour(1, 0, stranger, 1, 0.0),
            "let in as someone else (stranger let in, wrong person)",
        ),
        (
            cell_colour(0, stranger.unwrap_or(usize::MAX), stranger, 1, 0.5),
            "refused (enrolled, not recognised)",
        ),
        (cell_colour(0, 0, stranger, 1, 1.0), "right"),
    ]
    .into_iter()
    .enumerate()
    {
        let y = 50 + 18 * k as i32;
        root.draw(&Rectangle::new([(8, y), (22, y + 13)], colour.filled()))
            .map_err(err)?;
        root.draw(&Text::new(what, (28, y), font.clone()))
            .map_err(err)?;
    }
    Ok(())
}

/// One confusion cell of side `cell` at `(x, y)`: its colour, a grey border and its count
/// (white on the red cells of people let in as someone else).
fn confusion_cell(
    root: &Area,
    (x, y): (i32, i32),
    cell: u32,
    colour: RGBColor,
    count: usize,
    let_in: bool,
) -> Result<()> {
    let corners = [(x, y), (x + cell as i32, y + cell as i32)];
    root.draw(&Rectangle::new(corners, colour.filled()))
        .map_err(err)?;
    root.draw(&Rectangle::new(corners, RGBColor(200, 200, 200)))
        .map_err(err)?;
    if count > 0 {
        let size = if cell > 30 { 13 } else { 10 };
        let ink = if let_in { &WHITE } else { &BLACK };
        root.draw(&Text::new(
            count.to_string(),
            (x + 3, y + cell as i32 / 2 - 7),
            (FONT, size).into_font().color(ink),
        ))
        .map_err(err)?;
    }
    Ok(())
}

/// One DET curve: (false-accept rate, false-reject rate) points, in threshold order.
pub struct Curve {
    /// Legend.
    pub name: String,
    /// Points.
    pub points: Vec<(f64, f64)>,
}

/// A DET chart (both axes logarithmic), with a mark at each curve's operating threshold and a
/// dashed line at the FAR the door aims for. A log axis cannot show 0: points with a rate of 0
/// are left out of the curves (not drawn along the axis, where they read as measured), and a
/// mark at 0 is drawn at the edge with "0" in its label. Labels sit beside their mark, clear of
/// the axes.
pub fn det(
    curves: &[Curve],
    marks: &[(String, f64, f64)],
    target_far: f64,
    title: &str,
) -> Result<RgbImage> {
    det_with_axes(
        curves,
        marks,
        target_far,
        title,
        (
            "false-accept rate (strangers let in)",
            "false-reject rate (enrolled refused)",
        ),
    )
}

/// [`det`] with other axis names (liveness: attacks accepted, live people refused).
pub fn det_with_axes(
    curves: &[Curve],
    marks: &[(String, f64, f64)],
    target_far: f64,
    title: &str,
    axes: (&str, &str),
) -> Result<RgbImage> {
    register_font();
    let (w, h) = (720u32, 540u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let floor = 1e-4;
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 18))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d((floor..1.0f64).log_scale(), (floor..1.0f64).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(axes.0)
            .y_desc(axes.1)
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 14))
            .x_label_formatter(&|v| format!("{v:.0e}"))
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .draw()
            .map_err(err)?;
        let palette = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
        for (i, c) in curves.iter().enumerate() {
            let colour = palette[i % palette.len()];
            let pts: Vec<(f64, f64)> = c
                .points
                .iter()
                .copied()
                .filter(|&(a, b)| a >= floor && b >= floor)
                .collect();
            let drawn = pts.len() > 1;
            chart
                .draw_series(LineSeries::new(pts, colour.stroke_width(2)))
                .map_err(err)?
                .label(if drawn {
                    c.name.clone()
                } else {
                    format!("{}: no errors to draw (0 is off a log axis)", c.name)
                })
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
        }
        if (floor..1.0).contains(&target_far) {
            let grey = RGBColor(120, 120, 120);
            chart
                .draw_series(DashedLineSeries::new(
                    [(target_far, floor), (target_far, 1.0)],
                    6,
                    4,
                    grey.stroke_width(1),
                ))
                .map_err(err)?
                .label(format!("target {target_far:.0e}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], grey));
        }
        draw_marks(&mut chart, marks, floor)?;
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font((FONT, 13))
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    RgbImage::from_raw(w, h, buf).ok_or_else(|| anyhow!("chart buffer size"))
}

/// Points named on a DET chart (a threshold's FAR and FRR), a rate of 0 drawn at the
/// chart's `floor` and said in its label.
fn draw_marks(
    chart: &mut ChartContext<'_, BitMapBackend<'_>, Cartesian2d<LogCoord<f64>, LogCoord<f64>>>,
    marks: &[(String, f64, f64)],
    floor: f64,
) -> Result<()> {
    for (k, (name, far, frr)) in marks.iter().enumerate() {
        let p = (far.max(floor), frr.max(floor));
        let mut label = name.clone();
        if *far < floor {
            label.push_str(", FAR 0");
        }
        if *frr < floor {
            label.push_str(", FRR 0");
        }
        // Beside the mark, up and right, one row per mark so two marks never share a line.
        let offset = (9, -18 - 16 * k as i32);
        chart
            .draw_series([EmptyElement::at(p)
                + Circle::new((0, 0), 5, BLACK.filled())
                + Text::new(label, offset, (FONT, 12))])
            .map_err(err)?;
    }
    Ok(())
}

/// DET points from scores: genuine (right-person score or None when never accepted) and
/// impostor candidate scores, swept over every distinct threshold.
pub fn det_points(genuine: &[Option<f32>], impostor: &[f32]) -> Vec<(f64, f64)> {
    let mut thresholds: Vec<f32> = genuine
        .iter()
        .flatten()
        .chain(impostor)
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    thresholds.sort_by(f32::total_cmp);
    thresholds.dedup();
    let (ng, ni) = (genuine.len().max(1) as f64, impostor.len().max(1) as f64);
    thresholds
        .iter()
        .map(|&t| {
            let far = impostor.iter().filter(|&&s| s >= t).count() as f64 / ni;
            let frr = genuine
                .iter()
                .filter(|s| !s.is_some_and(|s| s >= t))
                .count() as f64
                / ng;
            (far, frr)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_draw_with_text() {
        let labels = vec!["ann".to_owned(), "bob".to_owned(), "stranger".to_owned()];
        let img = confusion(&labels, &[vec![5, 1, 0], vec![0, 6, 0], vec![1, 0, 9]], "t")
            .expect("confusion");
        // Text was drawn: some pixels are dark.
        assert!(
            img.pixels()
                .filter(|p| p[0] < 80 && p[1] < 80 && p[2] < 80)
                .count()
                > 100
        );
        let pts = det_points(&[Some(0.9), Some(0.4), None], &[0.1, 0.5, 0.3]);
        assert!(
            pts.iter()
                .all(|&(a, b)| (0.0..=1.0).contains(&a) && (0.0..=1.0).contains(&b))
        );
        let img = det(
            &[Curve {
                name: "x".into(),
                points: pts,
            }],
            &[("door".into(), 0.01, 0.1), ("zero".into(), 0.0, 0.0)],
            1e-3,
            "det",
        )
        .expect("det");
        assert_eq!(img.dimensions(), (720, 540));
    }

    #[test]
    fn det_points_move_the_right_way() {
        let pts = det_points(&[Some(0.9), Some(0.6)], &[0.5, 0.7]);
        // Lowest threshold: everyone in; highest: nobody.
        assert_eq!(pts.first(), Some(&(1.0, 0.0)));
        assert_eq!(pts.last(), Some(&(0.0, 0.5)));
    }
}
