//! Inclusion proofs of the RFC 6962 Merkle trees of docs/FORMAT.md ("Inclusion proofs"): a
//! block's tree of transaction ids and its tree of outcome records. A proof is the audit
//! path of RFC 6962 §2.1.1; it is checked with the algorithm of RFC 9162 §2.1.3.2, so any
//! RFC 6962 implementation checks a receipt the same way.

use sha2::{Digest, Sha256};

use crate::hash::{largest_power_of_two_below, merkle_subtree, Hash32};

/// The audit path of `leaves[index]`: the sibling subtree hashes from the leaf up to the
/// root (RFC 6962 §2.1.1, `PATH(m, D[n])`). Empty for a tree of one leaf.
///
/// Panics when `index` is not a leaf of the tree (the caller found the leaf there).
pub fn inclusion_proof(leaves: &[[u8; 32]], index: usize) -> Vec<Hash32> {
    assert!(index < leaves.len(), "leaf {index} of a tree of {} leaves", leaves.len());
    let mut path = Vec::new();
    audit_path(leaves, index, &mut path);
    path
}

/// `PATH(m, D[n])`, leaf first: the deeper sibling is pushed before the shallower one.
fn audit_path(leaves: &[[u8; 32]], index: usize, path: &mut Vec<Hash32>) {
    if leaves.len() == 1 {
        return;
    }
    let split = largest_power_of_two_below(leaves.len());
    if index < split {
        audit_path(&leaves[..split], index, path);
        path.push(Hash32(merkle_subtree(&leaves[split..])));
    } else {
        audit_path(&leaves[split..], index - split, path);
        path.push(Hash32(merkle_subtree(&leaves[..split])));
    }
}

/// Whether `proof` shows that `leaf` (the 32 bytes hashed as `SHA-256(0x00 || leaf)`) is
/// leaf `index` of a tree of `tree_size` leaves whose root is `root`: RFC 9162
/// §2.1.3.2's verification. Any other index, size, leaf, path or root fails.
pub fn verify_inclusion(
    leaf: &[u8; 32],
    index: u64,
    tree_size: u64,
    proof: &[Hash32],
    root: &Hash32,
) -> bool {
    if index >= tree_size {
        return false;
    }
    let mut f_n = index;
    let mut s_n = tree_size - 1;
    let mut r: [u8; 32] = Sha256::new().chain_update([0u8]).chain_update(leaf).finalize().into();
    for p in proof {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node(&p.0, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node(&r, &p.0);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    s_n == 0 && r == root.0
}

/// An inner node: `SHA-256(0x01 || left || right)`.
fn node(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    Sha256::new().chain_update([1u8]).chain_update(left).chain_update(right).finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::merkle_root;

    fn leaves(n: usize) -> Vec<[u8; 32]> {
        (0..n).map(|i| crate::hash::sha256(&(i as u64).to_be_bytes()).0).collect()
    }

    /// For each step of leaf `index`'s path in a tree of `size` leaves, leaf first,
    /// whether the sibling is on the left (RFC 6962 §2.1.1's recursion).
    fn shape(size: u64, index: u64) -> Vec<bool> {
        if size == 1 {
            return Vec::new();
        }
        let split = largest_power_of_two_below(size as usize) as u64;
        let mut steps = if index < split { shape(split, index) } else { shape(size - split, index - split) };
        steps.push(index >= split);
        steps
    }

    #[test]
    fn every_leaf_of_every_tree_up_to_64_verifies_and_nothing_else_does() {
        for n in 1..=64usize {
            let leaves = leaves(n);
            let root = merkle_root(&leaves);
            for (i, leaf) in leaves.iter().enumerate() {
                let proof = inclusion_proof(&leaves, i);
                let (index, size) = (i as u64, n as u64);
                assert!(verify_inclusion(leaf, index, size, &proof, &root), "leaf {i} of {n}");
                // Every other index fails.
                for other in (0..=n as u64).filter(|&o| o != index) {
                    assert!(
                        !verify_inclusion(leaf, other, size, &proof, &root),
                        "leaf {i} of {n} as {other}"
                    );
                }
                // Another size fails wherever the leaf's path has another shape there.
                // Where it has the same (leaf 0 of 3 and of 4), an audit path cannot tell
                // the sizes apart: RFC 6962 leaves binding the size to whoever signs the
                // root, here the block header, which holds `tx_count`.
                for other in (0..=65u64).filter(|&s| s != size) {
                    let same_shape = other > index && shape(other, index) == shape(size, index);
                    assert_eq!(
                        verify_inclusion(leaf, index, other, &proof, &root),
                        same_shape,
                        "leaf {i} of {n} in {other}"
                    );
                }
                // Any bit flipped in the leaf, the root or any hash of the path fails:
                // every bit up to 8 leaves, one bit of every byte above (which bit
                // moves with the byte and the leaf).
                let bits: Vec<usize> =
                    if n <= 8 { (0..256).collect() } else { (0..32).map(|b| b * 8 + (b + i) % 8).collect() };
                for bit in bits {
                    let mut bad = *leaf;
                    bad[bit / 8] ^= 1 << (bit % 8);
                    assert!(!verify_inclusion(&bad, index, size, &proof, &root));
                    let mut bad_root = root;
                    bad_root.0[bit / 8] ^= 1 << (bit % 8);
                    assert!(!verify_inclusion(leaf, index, size, &proof, &bad_root));
                    for step in 0..proof.len() {
                        let mut bad_proof = proof.clone();
                        bad_proof[step].0[bit / 8] ^= 1 << (bit % 8);
                        assert!(!verify_inclusion(leaf, index, size, &bad_proof, &root));
                    }
                }
                // A path with a hash left out or one added fails.
                if let Some((_, shorter)) = proof.split_last() {
                    assert!(!verify_inclusion(leaf, index, size, shorter, &root));
                }
                let mut longer = proof.clone();
                longer.push(root);
                assert!(!verify_inclusion(leaf, index, size, &longer, &root));
                // Another leaf of the same tree at this place fails.
                if n > 1 {
                    let other = &leaves[(i + 1) % n];
                    assert!(!verify_inclusion(other, index, size, &proof, &root));
                }
            }
        }
    }

    #[test]
    fn the_path_is_as_long_as_the_leaf_is_deep() {
        // A full tree of 2^k leaves: k hashes for every leaf.
        assert!(inclusion_proof(&leaves(1), 0).is_empty());
        assert_eq!(inclusion_proof(&leaves(1024), 517).len(), 10);
        // Seven leaves: the last one sits under the root's right child's right child.
        assert_eq!(inclusion_proof(&leaves(7), 6).len(), 2);
        assert_eq!(inclusion_proof(&leaves(7), 0).len(), 3);
    }

    #[test]
    fn an_empty_tree_proves_nothing() {
        let root = merkle_root(&[]);
        assert!(!verify_inclusion(&[0u8; 32], 0, 0, &[], &root));
    }
}
