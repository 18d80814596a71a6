//! Checks: sessions.

#[allow(unused_imports)]
use super::*;
