//! Apache Curator (Debian's `libcurator-recipes-java`) as a reference: compiles and runs the
//! small Java programs in `integration/java/` against a real ZooKeeper, for the interop test and
//! the benchmark's same-machine Curator figures.
//!
//! ```no_run
//! let dir = tempfile::tempdir().unwrap();
//! menagerie_integration::curator::compile("CuratorLockBench", dir.path()).unwrap();
//! let cmd = menagerie_integration::curator::java("CuratorLockBench", dir.path());
//! # drop(cmd);
//! ```

use std::path::Path;
use std::process::Command;

/// The jars Curator and the ZooKeeper client need, from `/usr/share/java`.
const JARS: &[&str] = &[
    "curator-client",
    "curator-framework",
    "curator-recipes",
    "zookeeper",
    "zookeeper-jute",
    "guava",
    "slf4j-api",
    "netty-handler",
    "netty-transport",
    "netty-transport-native-epoll",
    "netty-transport-native-unix-common",
    "netty-common",
    "netty-buffer",
    "netty-codec",
    "netty-resolver",
];

/// True when Curator's jars and a JDK are installed.
pub fn available() -> bool {
    Path::new("/usr/share/java/curator-recipes.jar").exists()
        && Command::new("javac")
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
}

/// The class path: the installed jars plus `classes` (where [`compile`] puts its output).
pub fn classpath(classes: &Path) -> String {
    let mut cp: Vec<String> = JARS
        .iter()
        .map(|j| format!("/usr/share/java/{j}.jar"))
        .filter(|p| Path::new(p).exists())
        .collect();
    cp.push(classes.display().to_string());
    cp.join(":")
}

/// Compiles `integration/java/<class>.java` into `classes`.
pub fn compile(class: &str, classes: &Path) -> std::io::Result<()> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("java")
        .join(format!("{class}.java"));
    let status = Command::new("javac")
        .arg("-cp")
        .arg(classpath(classes))
        .arg("-d")
        .arg(classes)
        .arg(&src)
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "javac {} failed",
            src.display()
        )))
    }
}

/// A `java` command running `class` (compiled into `classes`); add its arguments.
pub fn java(class: &str, classes: &Path) -> Command {
    let mut cmd = Command::new("java");
    cmd.arg("-cp").arg(classpath(classes)).arg(class);
    cmd
}
