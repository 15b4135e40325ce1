//! The marked blocks of the shipped proxy configurations (`deploy/haproxy/haproxy.cfg`,
//! `deploy/nginx/rampart.conf`): the lines from `# BEGIN <name>` to `# END <name>` are what a
//! site changes, and what the tests replace to run the files locally. Shared by the harness
//! and the deploy checks.

/// `text` with the lines from `# BEGIN <name>` to `# END <name>` (markers included) replaced
/// by `lines`, indented like the markers. Panics unless the block is there exactly once.
pub fn replace_block(text: &str, name: &str, lines: &[String]) -> String {
    let all: Vec<&str> = text.lines().collect();
    let find = |marker: String| {
        let hits: Vec<usize> = (0..all.len())
            .filter(|&i| all[i].trim() == marker)
            .collect();
        assert_eq!(hits.len(), 1, "expected one `{marker}` line");
        hits[0]
    };
    let from = find(format!("# BEGIN {name}"));
    let to = find(format!("# END {name}"));
    assert!(from < to, "block {name} ends before it begins");
    let indent = &all[from][..all[from].len() - all[from].trim_start().len()];
    let mut out: Vec<String> = all[..from].iter().map(|l| l.to_string()).collect();
    out.extend(lines.iter().map(|l| format!("{indent}{l}")));
    out.extend(all[to + 1..].iter().map(|l| l.to_string()));
    out.join("\n") + "\n"
}

/// The lines inside block `name`, trimmed.
pub fn block(text: &str, name: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .skip_while(|l| *l != format!("# BEGIN {name}"))
        .skip(1)
        .take_while(|l| *l != format!("# END {name}"))
        .map(str::to_string)
        .collect()
}
