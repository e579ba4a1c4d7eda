//! Log–log line charts (SVG and PNG through plotters) for the reproduction report, drawn only
//! from the CSV tables a run wrote. The font is the shipped DejaVu Sans (no system font path).

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// The shipped font (DejaVu Sans, see `assets/DejaVuSans-LICENSE.txt`).
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the shipped font as `sans-serif`; call once before drawing.
pub fn register_font() -> Result<()> {
    plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| anyhow!("the shipped font assets/DejaVuSans.ttf is invalid"))
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A solid line with small dots at the points.
    Line,
    /// A dashed line (reference values).
    Dashed,
    /// Large markers only (single configurations, best bands).
    Marker,
    /// A wide translucent line under the other series (the Pareto front of the memory plot).
    Envelope,
}

/// One labelled series of (x, y) points; points with a non-positive coordinate are left out
/// (the axes are logarithmic). An empty label keeps the series out of the legend (a panel
/// without labels draws no legend); a panel with labels but no points draws only its legend.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// The points.
    pub points: Vec<(f64, f64)>,
    /// Line, dashed or markers.
    pub style: Style,
    /// Colour index into the palette (same method → same colour across panels).
    pub color: usize,
}

/// One chart: a title, axis labels and its series; both axes logarithmic.
#[derive(Debug, Clone)]
pub struct Panel {
    /// Caption above the chart.
    pub title: String,
    /// Label of the x axis.
    pub x_label: String,
    /// Label of the y axis.
    pub y_label: String,
    /// The series.
    pub series: Vec<Series>,
    /// Legend in the upper right corner instead of the upper left.
    pub legend_right: bool,
}

/// Tableau-10 colours, then lighter and darker ones for the optimized methods.
const PALETTE: [RGBColor; 19] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 0),
    RGBColor(174, 199, 232),
    RGBColor(152, 223, 138),
    RGBColor(255, 152, 150),
    RGBColor(0, 128, 128),
    RGBColor(197, 27, 138),
    RGBColor(0, 90, 50),
    RGBColor(230, 171, 2),
    RGBColor(120, 120, 120),
];

/// Colour index of a curve name (a method's command-line name, `lower-bound` or anything else),
/// fixed so a method keeps its colour in every plot.
pub fn color_of(name: &str) -> usize {
    use lrmf_factor::Method;
    match name.parse::<Method>() {
        Ok(Method::Identity) => 7,
        Ok(Method::Sqrt) => 0,
        Ok(Method::LrSqrt) => 1,
        Ok(Method::DenseSqrt) => 2,
        Ok(Method::Bsr) => 4,
        Ok(Method::LrBsr) => 5,
        Ok(Method::Bisr) => 9,
        Ok(Method::LrBisr) => 6,
        Ok(Method::Bandmf) => 10,
        Ok(Method::LrBandmf) => 11,
        Ok(Method::Bandinv) => 12,
        Ok(Method::LrBandinv) => 13,
        Ok(Method::Blt) => 14,
        Ok(Method::LrBlt) => 15,
        Ok(Method::DenseOpt) => 16,
        Ok(Method::LrDenseOpt) => 17,
        Err(_) if name == crate::eval::LOWER_BOUND => 3,
        Err(_) => 8,
    }
}

/// Colour index of the Pareto front (grey, drawn as [`Style::Envelope`]).
pub const FRONT_COLOR: usize = 18;

fn pe(e: impl std::fmt::Debug) -> anyhow::Error {
    anyhow!("plot: {e:?}")
}

/// Superscript digits of DejaVu Sans.
const SUPERSCRIPT: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];

/// Tick label: `2ᵏ` for powers of two ≥ 1024, plain for 0.01 ≤ |x| < 10⁵, scientific otherwise.
fn tick(x: f64) -> String {
    let a = x.abs();
    let k = a.log2().round();
    if a >= 1024.0 && (a - k.exp2()).abs() <= 1e-9 * a {
        let exp: String = (k as u32)
            .to_string()
            .chars()
            .map(|c| SUPERSCRIPT[c.to_digit(10).unwrap_or(0) as usize])
            .collect();
        format!("2{exp}")
    } else if a == 0.0 {
        "0".into()
    } else if (1e-2..1e5).contains(&a) {
        let s = format!("{x:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{x:.0e}")
    }
}

/// A white figure titled `title`, split into a grid of `cols` columns holding `count` panels.
pub fn panel_grid<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    count: usize,
    cols: usize,
) -> Result<Vec<DrawingArea<DB, Shift>>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(pe)?;
    let root = root.titled(title, ("sans-serif", 26)).map_err(pe)?;
    Ok(root.split_evenly((count.div_ceil(cols), cols)))
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    panels: &[Panel],
    cols: usize,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let areas = panel_grid(&root, title, panels.len(), cols)?;
    for (p, area) in panels.iter().zip(areas) {
        let (x0, x1, y0, y1) = log_extent(p);
        let labelled = p.series.iter().any(|s| !s.label.is_empty());
        if x0 > x1 {
            // No data: a legend-only panel when it has labels, else nothing.
            if labelled {
                let mut chart = ChartBuilder::on(&area)
                    .caption(&p.title, ("sans-serif", 18))
                    .margin(12)
                    .build_cartesian_2d(
                        (1.0..2.0).log_scale().base(2.0),
                        (1.0..2.0).log_scale().base(2.0),
                    )
                    .map_err(pe)?;
                for s in &p.series {
                    draw_series(&mut chart, s, true)?;
                }
                legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
            }
            continue;
        }
        let (x0, x1) = (x0 / 1.15, x1 * 1.15);
        let (y0, y1) = (y0 / 1.3, y1 * 3.0);
        let mut chart = ChartBuilder::on(&area)
            .caption(&p.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(
                (x0..x1).log_scale().base(2.0),
                (y0..y1).log_scale().base(2.0),
            )
            .map_err(pe)?;
        chart
            .configure_mesh()
            .x_desc(&p.x_label)
            .y_desc(&p.y_label)
            .x_label_formatter(&|x| tick(*x))
            .y_label_formatter(&|y| tick(*y))
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 15))
            .draw()
            .map_err(pe)?;
        // The envelope goes under the other series.
        let (under, over): (Vec<&Series>, Vec<&Series>) =
            p.series.iter().partition(|s| s.style == Style::Envelope);
        for s in under.into_iter().chain(over) {
            draw_series(&mut chart, s, false)?;
        }
        if labelled {
            let pos = if p.legend_right {
                SeriesLabelPosition::UpperRight
            } else {
                SeriesLabelPosition::UpperLeft
            };
            legend(&mut chart, pos)?;
        }
    }
    root.present().map_err(pe)?;
    Ok(())
}

/// (x_min, x_max, y_min, y_max) over a panel's points that a log axis can show (finite and
/// > 0); x_min > x_max when there are none.
fn log_extent(p: &Panel) -> (f64, f64, f64, f64) {
    let pts = p
        .series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|(x, y)| *x > 0.0 && *y > 0.0 && x.is_finite() && y.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    (x0, x1, y0, y1)
}

type LogChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<LogCoord<f64>, LogCoord<f64>>>;

/// Draws the legend box of the labelled series.
fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut LogChart<'a, DB>,
    pos: SeriesLabelPosition,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .position(pos)
        .draw()
        .map_err(pe)
}

/// Draws one series (its positive, finite points) and its legend entry when labelled; with
/// `legend_only` the points are not drawn and the entry is made even without points.
fn draw_series<'a, DB: DrawingBackend + 'a>(
    chart: &mut LogChart<'a, DB>,
    s: &Series,
    legend_only: bool,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let c = PALETTE[s.color % PALETTE.len()];
    let v: Vec<(f64, f64)> = s
        .points
        .iter()
        .copied()
        .filter(|(x, y)| *x > 0.0 && *y > 0.0 && x.is_finite() && y.is_finite())
        .filter(|_| !legend_only)
        .collect();
    if v.is_empty() && (!legend_only || s.label.is_empty()) {
        return Ok(());
    }
    let width = if s.style == Style::Envelope { 9 } else { 2 };
    let line = if s.style == Style::Envelope {
        c.mix(0.35).stroke_width(width)
    } else {
        c.stroke_width(width)
    };
    let anno = match s.style {
        Style::Line => {
            chart
                .draw_series(v.iter().map(|&q| Circle::new(q, 2, c.filled())))
                .map_err(pe)?;
            chart.draw_series(LineSeries::new(v, line)).map_err(pe)?
        }
        Style::Envelope => chart.draw_series(LineSeries::new(v, line)).map_err(pe)?,
        Style::Dashed => chart
            .draw_series(DashedLineSeries::new(v, 8, 5, line))
            .map_err(pe)?,
        Style::Marker => chart
            .draw_series(v.iter().map(|&q| Circle::new(q, 6, c.stroke_width(2))))
            .map_err(pe)?,
    };
    if s.label.is_empty() {
        return Ok(());
    }
    let style = s.style;
    anno.label(s.label.clone())
        .legend(move |(x, y)| -> DynElement<DB, (i32, i32)> {
            match style {
                Style::Marker => Circle::new((x + 10, y), 5, c.stroke_width(2)).into_dyn(),
                _ => PathElement::new(vec![(x, y), (x + 20, y)], line).into_dyn(),
            }
        });
    Ok(())
}

/// `$draw(area, $args…)` into `<$stem>.svg` and `<$stem>.png` of pixel size `$size`; evaluates
/// to `Result<Vec<PathBuf>>` with both paths. (A macro: `$draw` is generic over the backend.)
macro_rules! save_svg_and_png {
    ($stem:expr, $size:expr, $draw:path, $($arg:expr),*) => {{
        use plotters::prelude::{BitMapBackend, IntoDrawingArea, SVGBackend};
        let size = $size;
        let svg = std::path::PathBuf::from(format!("{}.svg", $stem.display()));
        let png = std::path::PathBuf::from(format!("{}.png", $stem.display()));
        $draw(IntoDrawingArea::into_drawing_area(SVGBackend::new(&svg, size)), $($arg),*)
            .and_then(|()| {
                $draw(IntoDrawingArea::into_drawing_area(BitMapBackend::new(&png, size)), $($arg),*)
            })
            .map(|()| vec![svg, png])
    }};
}
pub(crate) use save_svg_and_png;

/// Draws `panels` in a grid of `cols` columns into `<stem>.svg` and `<stem>.png`; returns both
/// paths.
pub fn save(stem: &Path, title: &str, panels: &[Panel], cols: usize) -> Result<Vec<PathBuf>> {
    let cols = cols.max(1).min(panels.len().max(1));
    save_svg_and_png!(
        stem,
        grid_size(panels, cols, (560, 420)),
        draw,
        title,
        panels,
        cols
    )
}

/// Pixel size of a figure of `panels` in `cols` columns, each panel `panel` = (width, height),
/// plus a 40-pixel title band.
pub fn grid_size(panels: &[Panel], cols: usize, panel: (u32, u32)) -> (u32, u32) {
    let rows = panels.len().div_ceil(cols.max(1)).max(1);
    (cols as u32 * panel.0, rows as u32 * panel.1 + 40)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(x: f64, s: &str) {
        assert_eq!(tick(x), s);
    }

    #[test]
    fn ticks_and_files() {
        check(1000.0, "1000");
        check(0.5, "0.5");
        check(1048576.0, "2²⁰");
        check(1000000.0, "1e6");
        check(0.001, "1e-3");
        register_font().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let panel = Panel {
            title: "t".into(),
            x_label: "n".into(),
            y_label: "MaxSE".into(),
            series: vec![
                Series {
                    label: "a".into(),
                    points: vec![(1.0, 1.0), (10.0, 3.0), (0.0, 5.0)],
                    style: Style::Line,
                    color: 0,
                },
                Series {
                    label: "b".into(),
                    points: vec![(2.0, 2.0)],
                    style: Style::Marker,
                    color: 1,
                },
            ],
            legend_right: false,
        };
        // A legend-only panel (labels, no points) next to it.
        let mut keys = panel.clone();
        keys.series.iter_mut().for_each(|s| s.points.clear());
        let files = save(&dir.path().join("p0.1"), "title", &[panel, keys], 2).unwrap();
        assert_eq!(files[0], dir.path().join("p0.1.svg"));
        for f in files {
            assert!(
                std::fs::metadata(&f).unwrap().len() > 1000,
                "{}",
                f.display()
            );
        }
        let png = std::fs::read(dir.path().join("p0.1.png")).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
}
