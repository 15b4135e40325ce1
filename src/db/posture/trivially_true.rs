//! Recognising a policy condition that is always true, from the text PostgreSQL prints back
//! for it (`pg_get_expr`).
//!
//! This is a heuristic for the obvious ways to write "every row", not a prover. A condition
//! counts as always true when, after removing enclosing parentheses and `::boolean` casts:
//! - it is a true literal (`true`, `'t'`, `'on'`, …) or `NOT` of a false one;
//! - one branch of a top-level `OR` is always true, or every branch of an `AND` is;
//! - it compares a thing with itself (`x = x`, `x >= x`, `x <= x`,
//!   `x IS NOT DISTINCT FROM x` — `tenant_id = tenant_id` included);
//! - it compares two numeric literals and holds (`1 = 1`, `2 > 1`);
//! - it is `<literal or CURRENT_USER/SESSION_USER/CURRENT_ROLE> IS NOT NULL`.

/// Operators that hold when both sides are the same expression.
const REFLEXIVE: &[&str] = &["IS NOT DISTINCT FROM", ">=", "<=", "="];
/// Every comparison tried, longest first so `>=` is not read as `>`.
const COMPARISONS: &[&str] = &[
    "IS NOT DISTINCT FROM",
    ">=",
    "<=",
    "<>",
    "!=",
    "=",
    "<",
    ">",
];
/// Deeper nesting than this is not examined (and counts as not trivially true).
const MAX_DEPTH: usize = 32;

/// True when `expr` (as `pg_get_expr` prints it) is always true by the rules above. An empty
/// text (no condition) is not.
pub fn trivially_true(expr: &str) -> bool {
    is_true(expr, 0)
}

fn is_true(expr: &str, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    let e = strip_parens(expr);
    if let Some(parts) = split_top(e, "OR") {
        return parts.iter().any(|p| is_true(p, depth + 1));
    }
    if let Some(parts) = split_top(e, "AND") {
        return parts.iter().all(|p| is_true(p, depth + 1));
    }
    if let Some(rest) = keyword_prefix(e, "NOT") {
        return is_false(rest, depth + 1);
    }
    atom_true(e)
}

fn is_false(expr: &str, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    let e = strip_parens(expr);
    if let Some(parts) = split_top(e, "OR") {
        return parts.iter().all(|p| is_false(p, depth + 1));
    }
    if let Some(parts) = split_top(e, "AND") {
        return parts.iter().any(|p| is_false(p, depth + 1));
    }
    if let Some(rest) = keyword_prefix(e, "NOT") {
        return is_true(rest, depth + 1);
    }
    let lit = strip_bool_cast(e).to_ascii_lowercase();
    matches!(
        lit.as_str(),
        "false" | "'f'" | "'false'" | "'off'" | "'no'" | "'0'"
    )
}

fn atom_true(e: &str) -> bool {
    let lit = strip_bool_cast(e).to_ascii_lowercase();
    if matches!(
        lit.as_str(),
        "true" | "'t'" | "'true'" | "'on'" | "'yes'" | "'1'"
    ) {
        return true;
    }
    if let Some(subject) = e
        .strip_suffix(" IS NOT NULL")
        .or_else(|| e.strip_suffix(" is not null"))
    {
        let s = strip_parens(subject);
        let upper = s.to_ascii_uppercase();
        return s.starts_with('\'')
            || s.parse::<f64>().is_ok()
            || ["CURRENT_USER", "SESSION_USER", "CURRENT_ROLE"].contains(&upper.as_str());
    }
    for op in COMPARISONS {
        let Some((left, right)) = split_once_top(e, op) else {
            continue;
        };
        let (left, right) = (strip_parens(left), strip_parens(right));
        if REFLEXIVE.contains(op) && !left.is_empty() && left == right {
            return true;
        }
        return match (left.parse::<f64>(), right.parse::<f64>()) {
            (Ok(l), Ok(r)) => match *op {
                "=" | "IS NOT DISTINCT FROM" => l == r,
                ">=" => l >= r,
                "<=" => l <= r,
                "<>" | "!=" => l != r,
                "<" => l < r,
                ">" => l > r,
                _ => false,
            },
            _ => false,
        };
    }
    false
}

fn strip_bool_cast(e: &str) -> &str {
    let e = strip_parens(e);
    let e = e
        .strip_suffix("::boolean")
        .or_else(|| e.strip_suffix("::bool"))
        .unwrap_or(e);
    strip_parens(e)
}

/// Removes parentheses that enclose the whole expression (as many pairs as there are).
fn strip_parens(e: &str) -> &str {
    let mut e = e.trim();
    while e.starts_with('(') && closing_paren(e) == Some(e.len() - 1) {
        e = e[1..e.len() - 1].trim();
    }
    e
}

/// Byte offset of the parenthesis closing the one `e` starts with.
fn closing_paren(e: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for (i, c) in e.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Byte offsets where ` word ` occurs outside parentheses and quotes (case-insensitive).
fn top_level(e: &str, word: &str) -> Vec<usize> {
    let needle = format!(" {word} ");
    let (bytes, n) = (e.as_bytes(), needle.len());
    let mut found = Vec::new();
    let (mut depth, mut quote) = (0usize, None::<u8>);
    for (i, &b) in bytes.iter().enumerate() {
        match (quote, b) {
            (Some(q), b) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'\'' | b'"') => quote = Some(b),
            (None, b'(') => depth += 1,
            (None, b')') => depth = depth.saturating_sub(1),
            (None, _) => {
                if depth == 0
                    && bytes.len() >= i + n
                    && bytes[i..i + n].eq_ignore_ascii_case(needle.as_bytes())
                {
                    found.push(i);
                }
            }
        }
    }
    found
}

/// The parts of `e` between top-level occurrences of ` word `, or `None` when there are none.
fn split_top<'a>(e: &'a str, word: &str) -> Option<Vec<&'a str>> {
    let at = top_level(e, word);
    if at.is_empty() {
        return None;
    }
    let mut parts = Vec::with_capacity(at.len() + 1);
    let mut start = 0;
    for i in at {
        if i >= start {
            parts.push(&e[start..i]);
            start = i + word.len() + 2;
        }
    }
    parts.push(&e[start.min(e.len())..]);
    Some(parts)
}

fn split_once_top<'a>(e: &'a str, op: &str) -> Option<(&'a str, &'a str)> {
    let i = *top_level(e, op).first()?;
    Some((&e[..i], &e[i + op.len() + 2..]))
}

/// `e` without a leading `word ` (case-insensitive), when it starts with one.
fn keyword_prefix<'a>(e: &'a str, word: &str) -> Option<&'a str> {
    let head = e.get(..word.len() + 1)?;
    head.eq_ignore_ascii_case(&format!("{word} "))
        .then(|| &e[word.len() + 1..])
}

#[cfg(test)]
mod tests {
    use super::trivially_true;

    #[test]
    fn obvious_ways_to_say_every_row_are_caught() {
        for expr in [
            "true",
            "(true)",
            "(1 = 1)",
            "(2 > 1)",
            "('a'::text = 'a'::text)",
            "(tenant_id = tenant_id)",
            "(NOT false)",
            "((tenant_id = (NULLIF(current_setting('app.tenant_id'::text, true), ''::text))::uuid) OR true)",
            "(true AND (1 = 1))",
            "'t'::boolean",
            "(CURRENT_USER IS NOT NULL)",
            "(id IS NOT DISTINCT FROM id)",
        ] {
            assert!(trivially_true(expr), "{expr}");
        }
    }

    #[test]
    fn real_conditions_are_not() {
        for expr in [
            "",
            "false",
            "(1 = 2)",
            "(tenant_id = (NULLIF(current_setting('app.tenant_id'::text, true), ''::text))::uuid)",
            "((tenant_id IS NULL) AND (user_id = (NULLIF(current_setting('app.user_id'::text, true), ''::text))::uuid))",
            "(true AND (tenant_id = owner_id))",
            "(name = 'x OR true')",
            "(tenant_id IS NOT NULL)",
            "(NOT true)",
            "((((((",
            "é = é)",
        ] {
            assert!(!trivially_true(expr), "{expr}");
        }
    }
}
