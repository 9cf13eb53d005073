//! Docker's plugin spec file: `%ProgramData%\docker\plugins\Contrail.spec`
//! holding `npipe://\\.\pipe\Contrail`.

use std::io;
use std::path::{Path, PathBuf};

/// The plugin's name in Docker (`docker network create -d Contrail`).
pub const PLUGIN_NAME: &str = "Contrail";

/// `%ProgramData%` (the known folder, as Docker finds it; see
/// `service_host::windows::program_data`).
pub fn default_program_data() -> PathBuf {
    service_host::windows::program_data()
}

/// `<program_data>\docker\plugins\Contrail.spec`.
pub fn spec_path(program_data: &Path) -> PathBuf {
    program_data
        .join("docker")
        .join("plugins")
        .join(format!("{PLUGIN_NAME}.spec"))
}

/// A written spec file; [`SpecFile::remove`] (or drop) deletes it, and the
/// directories it had to create (`docker`, `docker\plugins`) when they are
/// empty by then, as the Linux driver does with its socket directory: a
/// host without Docker keeps nothing of ours once the driver stops.
#[derive(Debug)]
pub struct SpecFile {
    path: PathBuf,
    /// Created by `write`, innermost first.
    created_dirs: Vec<PathBuf>,
    removed: bool,
}

impl SpecFile {
    /// Writes `npipe://<pipe>` to the spec path under `program_data`,
    /// creating the directories Docker may not have made yet.
    pub fn write(program_data: &Path, pipe: &str) -> io::Result<Self> {
        let path = spec_path(program_data);
        let mut created_dirs = Vec::new();
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == program_data || d.exists() {
                break;
            }
            created_dirs.push(d.to_owned());
            dir = d.parent();
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, format!("npipe://{pipe}"))?;
        Ok(Self {
            path,
            created_dirs,
            removed: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Deletes the file (already gone is fine), then the directories
    /// `write` created if nothing else is in them.
    pub fn remove(mut self) -> io::Result<()> {
        self.removed = true;
        let r = match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
        self.remove_created_dirs();
        r
    }

    fn remove_created_dirs(&self) {
        for d in &self.created_dirs {
            // Not empty (Docker or another plugin uses it): keep it, and
            // its parents.
            if std::fs::remove_dir(d).is_err() {
                break;
            }
        }
    }
}

impl Drop for SpecFile {
    fn drop(&mut self) {
        if !self.removed {
            // Best effort on an error path; `remove` reports failures.
            let _ = std::fs::remove_file(&self.path);
            self.remove_created_dirs();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_the_dirs_it_created_and_only_those() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let spec = SpecFile::write(tmp.path(), r"\\.\pipe\X").expect("write");
        assert!(spec.path().exists());
        spec.remove().expect("remove");
        assert!(
            !tmp.path().join("docker").exists(),
            "created dirs left behind"
        );

        // Docker's own directory, with something else in it, stays.
        let plugins = tmp.path().join("docker").join("plugins");
        std::fs::create_dir_all(&plugins).expect("mkdir");
        std::fs::write(plugins.join("Other.spec"), b"x").expect("write");
        let spec = SpecFile::write(tmp.path(), r"\\.\pipe\X").expect("write");
        spec.remove().expect("remove");
        assert!(plugins.join("Other.spec").exists());
        assert!(!plugins.join("Contrail.spec").exists());
    }
}
