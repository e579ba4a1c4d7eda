//! Linear-axis line charts (accuracy vs epoch) for the full accuracy study. `plot.rs` draws the
//! log–log error charts; accuracies between 0 and 1 need linear axes, so this file draws the
//! same [`Panel`]s (its series, styles and shipped font) on linear axes instead, with one
//! accuracy range shared by all panels of a figure.

use crate::plot::{Panel, Style};
use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

fn pe(e: impl std::fmt::Debug) -> anyhow::Error {
    anyhow!("plot: {e:?}")
}

/// The (x, y) range of a panel's finite points, padded; `None` without points.
fn bounds(p: &Panel) -> Option<(f64, f64, f64, f64)> {
    let pts: Vec<(f64, f64)> = p
        .series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    if pts.is_empty() {
        return None;
    }
    let fold = |f: fn(f64, f64) -> f64, init: f64, g: fn(&(f64, f64)) -> f64| {
        pts.iter().map(g).fold(init, f)
    };
    let (x0, x1) = (
        fold(f64::min, f64::MAX, |p| p.0),
        fold(f64::max, f64::MIN, |p| p.0),
    );
    let (y0, y1) = (
        fold(f64::min, f64::MAX, |p| p.1),
        fold(f64::max, f64::MIN, |p| p.1),
    );
    let pad = ((y1 - y0) * 0.08).max(0.02);
    Some((x0 - 0.5, x1 + 0.5, y0 - pad, y1 + pad))
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
    let areas = crate::plot::panel_grid(&root, title, panels.len(), cols)?;
    // One accuracy axis for every panel, so methods compare at a glance.
    let all: Vec<_> = panels.iter().filter_map(bounds).collect();
    let y0 = all.iter().map(|b| b.2).fold(f64::MAX, f64::min);
    let y1 = all.iter().map(|b| b.3).fold(f64::MIN, f64::max);
    for (p, area) in panels.iter().zip(areas) {
        let Some((x0, x1, _, _)) = bounds(p) else {
            continue;
        };
        let mut chart = ChartBuilder::on(&area)
            .caption(&p.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(pe)?;
        chart
            .configure_mesh()
            .x_desc(&p.x_label)
            .y_desc(&p.y_label)
            .x_labels(((x1 - x0) as usize + 1).min(12))
            .x_label_formatter(&|x| {
                // Epochs are whole numbers: no label at fractional ticks.
                if (x - x.round()).abs() < 1e-9 {
                    format!("{x:.0}")
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|y| format!("{:.1}", y * 100.0))
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 15))
            .draw()
            .map_err(pe)?;
        for s in &p.series {
            let c = Palette99::pick(s.color).to_rgba();
            let v: Vec<(f64, f64)> = s
                .points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            let anno = match s.style {
                Style::Dashed => chart
                    .draw_series(DashedLineSeries::new(v, 8, 5, c.stroke_width(2)))
                    .map_err(pe)?,
                _ => {
                    chart
                        .draw_series(v.iter().map(|&q| Circle::new(q, 3, c.filled())))
                        .map_err(pe)?;
                    chart
                        .draw_series(LineSeries::new(v, c.stroke_width(2)))
                        .map_err(pe)?
                }
            };
            anno.label(s.label.clone()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
            });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 12))
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(pe)?;
    }
    root.present().map_err(pe)?;
    Ok(())
}

/// Draws `panels` (y as a fraction, labelled in %) in a grid of `cols` columns into
/// `<stem>.svg` and `<stem>.png`; returns both paths.
pub fn save_linear(
    stem: &Path,
    title: &str,
    panels: &[Panel],
    cols: usize,
) -> Result<Vec<PathBuf>> {
    let cols = cols.max(1).min(panels.len().max(1));
    let size = crate::plot::grid_size(panels, cols, (480, 360));
    crate::plot::save_svg_and_png!(stem, size, draw, title, panels, cols)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::Series;

    fn check(points: Vec<(f64, f64)>) -> Option<(f64, f64, f64, f64)> {
        bounds(&Panel {
            title: "t".into(),
            x_label: "epoch".into(),
            y_label: "test accuracy (%)".into(),
            series: vec![Series {
                label: "a".into(),
                points,
                style: Style::Line,
                color: 0,
            }],
            legend_right: false,
        })
    }

    #[test]
    fn bounds_pad_and_files_are_written() {
        let (x0, x1, y0, y1) = check(vec![(1.0, 0.5), (3.0, 0.7), (2.0, f64::NAN)]).unwrap();
        assert!(x0 < 1.0 && x1 > 3.0 && y0 < 0.5 && y1 > 0.7);
        assert!(check(vec![]).is_none());
        crate::plot::register_font().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let panel = Panel {
            title: "bisr".into(),
            x_label: "epoch".into(),
            y_label: "test accuracy (%)".into(),
            series: vec![Series {
                label: "exponential".into(),
                points: vec![(1.0, 0.5), (2.0, 0.6)],
                style: Style::Line,
                color: 1,
            }],
            legend_right: false,
        };
        let files = save_linear(&dir.path().join("c"), "t", &[panel.clone(), panel], 2).unwrap();
        for f in files {
            assert!(
                std::fs::metadata(&f).unwrap().len() > 1000,
                "{}",
                f.display()
            );
        }
    }
}
