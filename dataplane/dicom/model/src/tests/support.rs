//! Locating the test files: `HDS_DICOM_TEST_FILES`, else pydicom's bundled directory found
//! through `HDS_PYTHON` (or `python3`). A missing directory fails the test run.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

pub fn files_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("HDS_DICOM_TEST_FILES") {
            let dir = PathBuf::from(dir);
            assert!(dir.is_dir(), "HDS_DICOM_TEST_FILES={} is not a directory", dir.display());
            return dir;
        }
        let python = std::env::var("HDS_PYTHON").unwrap_or_else(|_| "python3".into());
        let out = Command::new(&python)
            .args([
                "-c",
                "import pydicom,os;print(os.path.join(os.path.dirname(pydicom.__file__),\"data\",\"test_files\"))",
            ])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {python} to find pydicom's test files: {e}"));
        assert!(
            out.status.success(),
            "{python} could not import pydicom; set HDS_DICOM_TEST_FILES or HDS_PYTHON: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        assert!(dir.is_dir(), "pydicom's test files are not at {}", dir.display());
        dir
    })
    .clone()
}

pub fn read(name: &str) -> Vec<u8> {
    let path = files_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("test file {} is missing: {e}", path.display()))
}

pub fn dcm_files() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(files_dir())
        .expect("test file directory is readable")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".dcm"))
        .collect();
    names.sort();
    names
}
