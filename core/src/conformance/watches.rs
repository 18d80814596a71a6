//! Checks: watches.

#[allow(unused_imports)]
use super::*;
