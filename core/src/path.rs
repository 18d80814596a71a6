//! ZooKeeper path rules and path helpers.
//!
//! A path is absolute, slash separated, has no empty, `.` or `..` component, no trailing slash (except
//! the root `/` itself) and none of the characters ZooKeeper refuses (NUL, control characters, the
//! surrogate and private-use range, U+FFF0..U+FFFF).

use crate::error::{Error, Result};

/// Checks `path` against ZooKeeper's rules.
///
/// For a sequential create the path may end in `/` (the counter becomes the whole name), so pass
/// `sequential = true` there.
///
/// ```
/// use menagerie_core::path::validate_path;
/// assert!(validate_path("/a/b", false).is_ok());
/// assert!(validate_path("/", false).is_ok());
/// assert!(validate_path("a/b", false).is_err());
/// assert!(validate_path("/a/", false).is_err());
/// assert!(validate_path("/a/", true).is_ok());
/// assert!(validate_path("/a//b", false).is_err());
/// assert!(validate_path("/a/../b", false).is_err());
/// ```
pub fn validate_path(path: &str, sequential: bool) -> Result<()> {
    let bad = |reason: &'static str| {
        Err(Error::InvalidPath {
            path: path.to_string(),
            reason,
        })
    };
    if path.is_empty() {
        return bad("path must not be empty");
    }
    if !path.starts_with('/') {
        return bad("path must start with '/'");
    }
    if path.len() == 1 {
        // The root itself, or (sequential) a top-level node named by its counter alone.
        return Ok(());
    }
    // A sequential path gets a suffix appended, so a trailing '/' is fine there.
    let checked = if sequential && path.ends_with('/') {
        &path[..path.len() - 1]
    } else {
        path
    };
    if checked.ends_with('/') {
        return bad("path must not end with '/'");
    }
    for component in checked[1..].split('/') {
        if component.is_empty() {
            return bad("empty node name");
        }
        if component == "." || component == ".." {
            return bad("relative paths ('.' and '..') are not allowed");
        }
    }
    for c in path.chars() {
        let u = c as u32;
        if u == 0 {
            return bad("null character not allowed");
        }
        if (0x01..=0x1f).contains(&u)
            || (0x7f..=0x9f).contains(&u)
            || (0xd800..=0xf8ff).contains(&u)
            || (0xfff0..=0xffff).contains(&u)
        {
            return bad("invalid character");
        }
    }
    Ok(())
}

/// The parent of `path` (`/` for a top-level node, `None` for the root).
///
/// ```
/// use menagerie_core::path::parent;
/// assert_eq!(parent("/a/b"), Some("/a"));
/// assert_eq!(parent("/a"), Some("/"));
/// assert_eq!(parent("/"), None);
/// ```
pub fn parent(path: &str) -> Option<&str> {
    if path == "/" || path.is_empty() {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// The last component of `path` (empty for the root).
///
/// ```
/// use menagerie_core::path::basename;
/// assert_eq!(basename("/a/b"), "b");
/// assert_eq!(basename("/"), "");
/// ```
pub fn basename(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// Joins a parent path and a child name (or relative path).
///
/// ```
/// use menagerie_core::path::join;
/// assert_eq!(join("/", "a"), "/a");
/// assert_eq!(join("/a", "b"), "/a/b");
/// assert_eq!(join("/a/", "/b"), "/a/b");
/// ```
pub fn join(parent: &str, child: &str) -> String {
    let p = parent.trim_end_matches('/');
    let c = child.trim_start_matches('/');
    if c.is_empty() {
        return if p.is_empty() {
            "/".to_string()
        } else {
            p.to_string()
        };
    }
    format!("{p}/{c}")
}

/// Splits an absolute path into its components.
///
/// ```
/// use menagerie_core::path::components;
/// assert_eq!(components("/a/b"), vec!["a", "b"]);
/// assert!(components("/").is_empty());
/// ```
pub fn components(path: &str) -> Vec<&str> {
    path.split('/').filter(|c| !c.is_empty()).collect()
}

/// Every ancestor of `path`, from the top down, excluding the root and `path` itself.
///
/// ```
/// use menagerie_core::path::ancestors;
/// assert_eq!(ancestors("/a/b/c"), vec!["/a", "/a/b"]);
/// ```
pub fn ancestors(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for (i, c) in path.char_indices() {
        if c == '/' && i > 0 {
            out.push(&path[..i]);
        }
    }
    out
}

/// True when `path` is `root` or lies below it.
///
/// ```
/// use menagerie_core::path::is_within;
/// assert!(is_within("/a/b", "/a"));
/// assert!(is_within("/a", "/a"));
/// assert!(!is_within("/ab", "/a"));
/// assert!(is_within("/x", "/"));
/// ```
pub fn is_within(path: &str, root: &str) -> bool {
    if root == "/" {
        return path.starts_with('/');
    }
    path == root || (path.starts_with(root) && path.as_bytes().get(root.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_control_and_reserved_characters() {
        assert!(validate_path("/a\u{0}b", false).is_err());
        assert!(validate_path("/a\u{1}b", false).is_err());
        assert!(validate_path("/a\u{7f}", false).is_err());
        assert!(validate_path("/a\u{fff5}", false).is_err());
        assert!(validate_path("/a\u{e000}", false).is_err());
        assert!(validate_path("/ünïcode", false).is_ok());
        assert!(validate_path("", false).is_err());
        assert!(validate_path("/.", false).is_err());
        assert!(validate_path("/a/.", false).is_err());
        assert!(validate_path("/.a", false).is_ok());
    }

    #[test]
    fn join_and_split_round_trip() {
        let p = join(&join("/", "x"), "y");
        assert_eq!(p, "/x/y");
        assert_eq!(parent(&p), Some("/x"));
        assert_eq!(basename(&p), "y");
        assert_eq!(join("/", ""), "/");
    }
}
