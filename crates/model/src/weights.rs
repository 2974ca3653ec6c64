//! Reading Hugging Face weight files one tensor at a time: `model.safetensors` (header parsed,
//! each tensor read from its byte range) and `pytorch_model.bin` (through Burn's PyTorch reader,
//! which also reads lazily). Peak memory stays near one copy of the model.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use burn::store::pytorch_reader::{self, PytorchReader};
use burn::tensor::{DType, TensorData};
use safetensors::tensor::{Dtype, Metadata};

use crate::error::ModelError;

/// The file names transformers gives weights, in the order it prefers them.
pub const WEIGHT_FILES: [&str; 2] = ["model.safetensors", "pytorch_model.bin"];

/// An opened weight file: names, shapes and element types known; bytes read on demand.
pub(crate) struct WeightFile {
    path: PathBuf,
    entries: HashMap<String, Entry>,
    /// The safetensors file, kept open for the per-tensor reads.
    file: Option<File>,
}

enum Entry {
    Safetensors {
        dtype: Dtype,
        shape: Vec<usize>,
        /// Absolute byte range in the file.
        start: u64,
        end: u64,
    },
    Pytorch(pytorch_reader::Tensor),
}

impl Entry {
    fn shape(&self) -> &[usize] {
        match self {
            Entry::Safetensors { shape, .. } => shape,
            Entry::Pytorch(tensor) => tensor.shape(),
        }
    }
}

impl WeightFile {
    /// Opens `path`, telling the format from its extension (`.safetensors`, else PyTorch).
    pub(crate) fn open(path: &Path) -> Result<Self, ModelError> {
        if path.extension().is_some_and(|ext| ext == "safetensors") {
            Self::open_safetensors(path)
        } else {
            Self::open_pytorch(path)
        }
    }

    fn corrupt(path: &Path, message: impl Into<String>) -> ModelError {
        ModelError::CorruptWeights {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    fn open_safetensors(path: &Path) -> Result<Self, ModelError> {
        let mut file = File::open(path).map_err(ModelError::io("open", path))?;
        let file_len = file
            .metadata()
            .map_err(ModelError::io("inspect", path))?
            .len();
        let mut len_bytes = [0u8; 8];
        file.read_exact(&mut len_bytes).map_err(|_| {
            Self::corrupt(
                path,
                format!("{file_len} bytes, too short for a safetensors header"),
            )
        })?;
        let header_len = u64::from_le_bytes(len_bytes);
        // safetensors' own limit on header size: anything larger is garbage, not a header.
        const MAX_HEADER: u64 = 100_000_000;
        if header_len > MAX_HEADER || 8 + header_len > file_len {
            return Err(Self::corrupt(
                path,
                format!("header claims {header_len} bytes but the file has {file_len}"),
            ));
        }
        let mut header = vec![0u8; header_len as usize];
        file.read_exact(&mut header)
            .map_err(ModelError::io("read", path))?;
        let metadata: Metadata = serde_json::from_slice(&header)
            .map_err(|e| Self::corrupt(path, format!("unreadable header: {e}")))?;
        let data_start = 8 + header_len;
        let expected_len = data_start + metadata.data_len() as u64;
        if expected_len != file_len {
            return Err(Self::corrupt(
                path,
                format!("the header describes {expected_len} bytes but the file has {file_len}"),
            ));
        }
        let entries = metadata
            .tensors()
            .into_iter()
            .map(|(name, info)| {
                let entry = Entry::Safetensors {
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    start: data_start + info.data_offsets.0 as u64,
                    end: data_start + info.data_offsets.1 as u64,
                };
                (name, entry)
            })
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            entries,
            file: Some(file),
        })
    }

    fn open_pytorch(path: &Path) -> Result<Self, ModelError> {
        if !path.is_file() {
            return Err(ModelError::io("open", path)(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such file",
            )));
        }
        let reader = PytorchReader::new(path).map_err(|e| Self::corrupt(path, e.to_string()))?;
        let entries = reader
            .into_tensors()
            .into_iter()
            .map(|(name, tensor)| (name, Entry::Pytorch(tensor)))
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            entries,
            file: None,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    pub(crate) fn shape(&self, name: &str) -> Option<&[usize]> {
        self.entries.get(name).map(Entry::shape)
    }

    /// Reads tensor `name` as f32, row-major, in the file's (PyTorch) layout.
    pub(crate) fn read_f32(&mut self, name: &str) -> Result<Vec<f32>, ModelError> {
        let entry = self
            .entries
            .get(name)
            .expect("callers look names up with `shape` first");
        let unsupported = |dtype: String| ModelError::UnsupportedDtype {
            path: self.path.clone(),
            name: name.to_string(),
            dtype,
        };
        let (bytes, dtype, shape) = match entry {
            Entry::Safetensors {
                dtype,
                shape,
                start,
                end,
            } => {
                let burn_dtype = match dtype {
                    Dtype::F32 => DType::F32,
                    Dtype::F16 => DType::F16,
                    Dtype::BF16 => DType::BF16,
                    Dtype::F64 => DType::F64,
                    other => return Err(unsupported(format!("{other:?}"))),
                };
                let file = self
                    .file
                    .as_mut()
                    .expect("safetensors entries keep their file open");
                let mut bytes = vec![0u8; (end - start) as usize];
                file.seek(SeekFrom::Start(*start))
                    .and_then(|_| file.read_exact(&mut bytes))
                    .map_err(ModelError::io("read", &self.path))?;
                (bytes, burn_dtype, shape.clone())
            }
            Entry::Pytorch(tensor) => {
                let burn_dtype = match tensor.dtype() {
                    pytorch_reader::DType::F32 => DType::F32,
                    pytorch_reader::DType::F16 => DType::F16,
                    pytorch_reader::DType::BF16 => DType::BF16,
                    pytorch_reader::DType::F64 => DType::F64,
                    other => return Err(unsupported(format!("{other:?}"))),
                };
                let bytes = tensor
                    .read()
                    .map_err(|e| Self::corrupt(&self.path, e.to_string()))?;
                (bytes, burn_dtype, tensor.shape().to_vec())
            }
        };
        let data = TensorData::try_from_bytes_vec(bytes, shape, dtype)
            .map_err(|e| Self::corrupt(&self.path, format!("tensor `{name}`: {e:?}")))?;
        let data = if dtype == DType::F32 {
            data
        } else {
            data.convert::<f32>()
        };
        data.try_into_vec::<f32>()
            .map_err(|e| Self::corrupt(&self.path, format!("tensor `{name}`: {e:?}")))
    }
}

/// Reverses a row-major matrix's axes: PyTorch's `[out, in]` linear weight to Burn's `[in, out]`
/// and back.
pub(crate) fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    debug_assert_eq!(values.len(), rows * cols);
    let mut out = vec![0.0; values.len()];
    for (r, row) in values.chunks_exact(cols).enumerate() {
        for (c, value) in row.iter().enumerate() {
            out[c * rows + r] = *value;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_swaps_axes() {
        let m = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2 x 3
        assert_eq!(transpose(&m, 2, 3), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        assert_eq!(transpose(&transpose(&m, 2, 3), 3, 2), m.to_vec());
    }

    #[test]
    fn truncated_safetensors_is_a_corrupt_weights_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let data: Vec<u8> = (0..24u8).collect();
        let view = safetensors::tensor::TensorView::new(Dtype::F32, vec![2, 3], &data).unwrap();
        let bytes = safetensors::serialize([("w", view)], None).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
        let error = WeightFile::open(&path)
            .err()
            .expect("truncated file must fail");
        assert!(
            matches!(error, ModelError::CorruptWeights { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("model.safetensors"), "{error}");

        std::fs::write(&path, &bytes).unwrap();
        let mut file = WeightFile::open(&path).unwrap();
        assert_eq!(file.shape("w"), Some(&[2usize, 3][..]));
        assert_eq!(file.read_f32("w").unwrap().len(), 6);
    }

    #[test]
    fn garbage_is_a_corrupt_weights_error_for_both_formats() {
        let dir = tempfile::tempdir().unwrap();
        for name in WEIGHT_FILES {
            let path = dir.path().join(name);
            std::fs::write(&path, b"this is not a weight file at all").unwrap();
            let error = WeightFile::open(&path).err().expect("garbage must fail");
            assert!(
                matches!(error, ModelError::CorruptWeights { .. }),
                "{name}: {error}"
            );
        }
    }
}
