//! Checks: multi.

#[allow(unused_imports)]
use super::*;
