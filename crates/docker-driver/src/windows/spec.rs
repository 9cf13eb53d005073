//! Docker's plugin spec file: `%ProgramData%\docker\plugins\Contrail.spec`
//! holding `npipe://\\.\pipe\Contrail`.

use std::io;
use std::path::{Path, PathBuf};

/// The plugin's name in Docker (`docker network create -d Contrail`).
pub const PLUGIN_NAME: &str = "Contrail";

/// `%ProgramData%`, or `C:\ProgramData` when unset.
pub fn default_program_data() -> PathBuf {
    std::env::var_os("ProgramData")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"))
}

/// `<program_data>\docker\plugins\Contrail.spec`.
pub fn spec_path(program_data: &Path) -> PathBuf {
    program_data
        .join("docker")
        .join("plugins")
        .join(format!("{PLUGIN_NAME}.spec"))
}

/// A written spec file; [`SpecFile::remove`] (or drop) deletes it.
#[derive(Debug)]
pub struct SpecFile {
    path: PathBuf,
    removed: bool,
}

impl SpecFile {
    /// Writes `npipe://<pipe>` to the spec path under `program_data`,
    /// creating the directories Docker may not have made yet.
    pub fn write(program_data: &Path, pipe: &str) -> io::Result<Self> {
        let path = spec_path(program_data);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, format!("npipe://{pipe}"))?;
        Ok(Self {
            path,
            removed: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Deletes the file; already gone is fine.
    pub fn remove(mut self) -> io::Result<()> {
        self.removed = true;
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

impl Drop for SpecFile {
    fn drop(&mut self) {
        if !self.removed {
            // Best effort on an error path; `remove` reports failures.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
