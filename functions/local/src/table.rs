//! Plain-text tables for people: columns aligned, long cells cut.

/// The widest a cell is printed; longer text ends in `…`.
pub const MAX_CELL: usize = 60;

/// `header` and `rows` as lines of columns two spaces apart, each column as
/// wide as its widest cell (in characters); no trailing spaces.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let cut: Vec<Vec<String>> = std::iter::once(header.iter().map(|h| (*h).to_owned()).collect())
        .chain(rows.iter().cloned())
        .map(|row| row.into_iter().map(|cell| shorten(&cell)).collect())
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

fn shorten(cell: &str) -> String {
    let cell = cell.replace(['\n', '\r', '\t'], " ");
    if cell.chars().count() <= MAX_CELL {
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
            &["TIME", "TYPE", "SERVICE"],
            &[vec!["1".into(), "Alert Firing".into(), "payments".into()], vec!["22".into(), "é".into(), long]],
        );
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "TIME  TYPE          SERVICE");
        assert_eq!(lines[1], "1     Alert Firing  payments");
        assert!(lines[2].starts_with("22    é             xxx"), "{table}");
        assert!(lines[2].ends_with('…') && lines[2].chars().count() == 6 + 14 + MAX_CELL, "{table}");
    }
}
