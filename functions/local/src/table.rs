//! Plain-text tables for people: columns aligned, long cells cut.

/// The widest a cell is printed; longer text ends in `…`.
pub const MAX_CELL: usize = 48;

/// `header` and `rows` as lines of columns two spaces apart, each column as
/// wide as its widest cell (in characters); no trailing spaces. Cells longer
/// than [`MAX_CELL`] are cut, except in the last column, which nothing follows.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let last = header.len().saturating_sub(1);
    let cut: Vec<Vec<String>> = std::iter::once(header.iter().map(|h| (*h).to_owned()).collect())
        .chain(rows.iter().cloned())
        .map(|row| row.into_iter().enumerate().map(|(i, cell)| shorten(&cell, i < last)).collect())
        .collect();
    let mut widths = vec![0; header.len()];
    for row in &cut {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &cut {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn shorten(cell: &str, cut: bool) -> String {
    let cell = cell.replace(['\n', '\r', '\t'], " ");
    if !cut || cell.chars().count() <= MAX_CELL {
        cell
    } else {
        format!("{}…", cell.chars().take(MAX_CELL - 1).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_and_long_cells_are_cut() {
        let long = "x".repeat(MAX_CELL + 5);
        let table = render(
            &["TIME", "SERVICE", "DELIVERY"],
            &[vec!["1".into(), "payments".into(), "d-1".into()], vec!["22".into(), long.clone(), long.clone()]],
        );
        let lines: Vec<&str> = table.lines().collect();
        let width = MAX_CELL + 2;
        assert_eq!(lines[0], format!("TIME  {:<width$}DELIVERY", "SERVICE"));
        assert_eq!(lines[1], format!("1     {:<width$}d-1", "payments"));
        let cut = format!("{}…", "x".repeat(MAX_CELL - 1));
        assert_eq!(lines[2], format!("22    {cut}  {long}"), "the last column is whole");
    }
}
