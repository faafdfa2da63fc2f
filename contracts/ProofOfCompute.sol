// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/// @title ProofOfCompute
/// @notice On-chain ledger of verified pocmesh compute: dispatchers credit compute units to provider
///         wallets, one at a time or in Merkle-committed batches. Units are also presented as a
///         non-transferable ERC-20 view (decimals 0) so block explorers show them as a token balance.
/// @dev Invariant: the sum of all `computeUnits` equals `totalUnits`. Every credit emits exactly one
///      ERC-20 `Transfer(address(0), provider, units)`. A batch's only storage is its receipts root, so
///      "recorded" means exactly `batchRoot[batchId] != 0`.
contract ProofOfCompute is AccessControl {
    /// @notice Role allowed to record compute: keccak256("DISPATCHER_ROLE").
    /// @return The role identifier.
    bytes32 public constant DISPATCHER_ROLE = keccak256("DISPATCHER_ROLE");

    /// @notice Compute units credited to a provider wallet.
    /// @return units The provider's units (also its ERC-20 `balanceOf`).
    mapping(address provider => uint256 units) public computeUnits;

    /// @notice Sum of all compute units ever credited.
    /// @return The total units (also the ERC-20 `totalSupply`).
    uint256 public totalUnits;

    /// @notice Receipts Merkle root of a recorded batch; zero if the batch was never recorded.
    /// @return receiptsRoot The batch's receipts root, or zero.
    mapping(bytes32 batchId => bytes32 receiptsRoot) public batchRoot;

    /// @notice Units were credited to a provider by a single `recordCompute` call.
    /// @param provider The credited wallet.
    /// @param units The units credited by this call (always 1).
    /// @param total The provider's computeUnits after the credit.
    /// @param batchId The batch of the credit; zero for a single (unbatched) credit.
    event ComputeRecorded(address indexed provider, uint256 units, uint256 total, bytes32 indexed batchId);

    /// @notice A batch of verified completions was recorded; its per-provider credits are the
    ///         `Transfer(address(0), provider, units)` logs of the same transaction.
    /// @param batchId The batch identifier (derived from the batch content by the dispatcher).
    /// @param dispatcher The account that recorded the batch.
    /// @param receiptsRoot Merkle root over the batch's receipt leaves.
    /// @param entries Number of providers credited (providers.length).
    /// @param units Sum of the units credited by the batch.
    event BatchRecorded(
        bytes32 indexed batchId, address indexed dispatcher, bytes32 receiptsRoot, uint256 entries, uint256 units
    );

    /// @notice ERC-20 transfer event; emitted only as a mint, from address(0), when units are credited.
    /// @param from Always address(0).
    /// @param to The credited provider.
    /// @param value The units credited.
    event Transfer(address indexed from, address indexed to, uint256 value);

    /// @notice ERC-20 approval event; declared for the standard ABI, never emitted.
    /// @param owner The token owner.
    /// @param spender The approved spender.
    /// @param value The approved amount.
    event Approval(address indexed owner, address indexed spender, uint256 value);

    /// @notice The batch id is zero.
    error ZeroBatchId();

    /// @notice The batch was recorded before.
    /// @param batchId The repeated batch id.
    error BatchAlreadyRecorded(bytes32 batchId);

    /// @notice The receipts root is zero.
    error ZeroReceiptsRoot();

    /// @notice The providers array is empty.
    error EmptyBatch();

    /// @notice The providers and units arrays differ in length.
    /// @param providers Length of the providers array.
    /// @param units Length of the units array.
    error LengthMismatch(uint256 providers, uint256 units);

    /// @notice A provider address is zero.
    /// @param index Position of the zero address in the providers array (0 for `recordCompute`).
    error ZeroProvider(uint256 index);

    /// @notice A units entry is zero.
    /// @param index Position of the zero entry in the units array.
    error ZeroUnits(uint256 index);

    /// @notice Compute units cannot be transferred or approved.
    error NonTransferable();

    /// @notice Deploys the ledger; the deployer receives DEFAULT_ADMIN_ROLE and grants DISPATCHER_ROLE
    ///         explicitly afterwards with `grantRole`.
    constructor() {
        _grantRole(DEFAULT_ADMIN_ROLE, msg.sender);
    }

    /// @notice Credits one compute unit to `provider` (the single-call interface).
    /// @dev DISPATCHER_ROLE only. Emits `ComputeRecorded(provider, 1, total, 0)` and
    ///      `Transfer(address(0), provider, 1)`.
    /// @param provider The wallet to credit; must not be zero.
    function recordCompute(address provider) external onlyRole(DISPATCHER_ROLE) {
        if (provider == address(0)) revert ZeroProvider(0);
        // Checked: the total bounds every balance, so the provider's increment cannot overflow.
        totalUnits += 1;
        uint256 total;
        unchecked {
            total = computeUnits[provider] + 1;
        }
        computeUnits[provider] = total;
        emit ComputeRecorded(provider, 1, total, bytes32(0));
        emit Transfer(address(0), provider, 1);
    }

    /// @notice Records a batch of verified completions, aggregated per provider, under a receipts root.
    /// @dev DISPATCHER_ROLE only. Providers must be distinct within a batch (the caller aggregates per
    ///      wallet; not checked on chain to save gas). Emits one `Transfer(address(0), provider, units)`
    ///      per entry and one `BatchRecorded`.
    /// @param batchId Non-zero batch identifier; each id can be recorded once.
    /// @param receiptsRoot Non-zero Merkle root over the batch's receipt leaves (see `verifyReceipt`).
    /// @param providers Wallets to credit; non-empty, no zero address.
    /// @param units Units per provider, same length as `providers`, no zero entry.
    function recordBatch(
        bytes32 batchId,
        bytes32 receiptsRoot,
        address[] calldata providers,
        uint256[] calldata units
    ) external onlyRole(DISPATCHER_ROLE) {
        if (batchId == bytes32(0)) revert ZeroBatchId();
        if (batchRoot[batchId] != bytes32(0)) revert BatchAlreadyRecorded(batchId);
        if (receiptsRoot == bytes32(0)) revert ZeroReceiptsRoot();
        uint256 n = providers.length;
        if (n == 0) revert EmptyBatch();
        if (n != units.length) revert LengthMismatch(n, units.length);

        batchRoot[batchId] = receiptsRoot;

        uint256 sum;
        for (uint256 i; i < n; ) {
            address provider = providers[i];
            uint256 u = units[i];
            if (provider == address(0)) revert ZeroProvider(i);
            if (u == 0) revert ZeroUnits(i);
            // Checked: the batch sum (and below, the new total) must not overflow.
            sum += u;
            unchecked {
                // Cannot overflow unless totalUnits + sum does, which reverts the whole call below.
                computeUnits[provider] += u;
                ++i;
            }
            emit Transfer(address(0), provider, u);
        }
        totalUnits += sum;
        emit BatchRecorded(batchId, msg.sender, receiptsRoot, n, sum);
    }

    /// @notice Checks that a receipt leaf belongs to a recorded batch.
    /// @dev Leaf = keccak256(bytes.concat(keccak256(abi.encode(jobId, provider, node, units, resultHash)))),
    ///      pairs hashed sorted (OpenZeppelin `MerkleProof`).
    /// @param batchId The batch to check against.
    /// @param leaf The finished (double-hashed) receipt leaf.
    /// @param proof Sibling hashes from the leaf up to the root.
    /// @return True if the batch is recorded and the proof leads from `leaf` to its receipts root.
    function verifyReceipt(bytes32 batchId, bytes32 leaf, bytes32[] calldata proof) external view returns (bool) {
        bytes32 root = batchRoot[batchId];
        if (root == bytes32(0)) return false;
        return MerkleProof.verifyCalldata(proof, root, leaf);
    }

    // ---------------------------------------------------------------------------------------------
    // Non-transferable ERC-20 view of compute units.
    // ---------------------------------------------------------------------------------------------

    /// @notice ERC-20 token name.
    /// @return "pocmesh Compute Units".
    function name() external pure returns (string memory) {
        return "pocmesh Compute Units";
    }

    /// @notice ERC-20 token symbol.
    /// @return "PCU".
    function symbol() external pure returns (string memory) {
        return "PCU";
    }

    /// @notice ERC-20 decimals: compute units are whole numbers.
    /// @return Always 0.
    function decimals() external pure returns (uint8) {
        return 0;
    }

    /// @notice ERC-20 total supply: all compute units credited.
    /// @return The same value as `totalUnits`.
    function totalSupply() external view returns (uint256) {
        return totalUnits;
    }

    /// @notice ERC-20 balance: the compute units of `account`.
    /// @param account The wallet to query.
    /// @return The same value as `computeUnits(account)`.
    function balanceOf(address account) external view returns (uint256) {
        return computeUnits[account];
    }

    /// @notice ERC-20 allowance: units cannot be moved, so nothing is ever approved.
    /// @param owner The token owner (ignored).
    /// @param spender The spender (ignored).
    /// @return Always 0.
    function allowance(address owner, address spender) external pure returns (uint256) {
        owner;
        spender;
        return 0;
    }

    // The three mutating ERC-20 functions keep the standard (nonpayable) ABI. They are `virtual`
    // so the compiler does not suggest `pure` for a body that only reverts.

    /// @notice ERC-20 transfer; always reverts: compute units are non-transferable.
    /// @param to Ignored.
    /// @param value Ignored.
    /// @return Never returns.
    function transfer(address to, uint256 value) external virtual returns (bool) {
        to;
        value;
        revert NonTransferable();
    }

    /// @notice ERC-20 transferFrom; always reverts: compute units are non-transferable.
    /// @param from Ignored.
    /// @param to Ignored.
    /// @param value Ignored.
    /// @return Never returns.
    function transferFrom(address from, address to, uint256 value) external virtual returns (bool) {
        from;
        to;
        value;
        revert NonTransferable();
    }

    /// @notice ERC-20 approve; always reverts: compute units are non-transferable.
    /// @param spender Ignored.
    /// @param value Ignored.
    /// @return Never returns.
    function approve(address spender, uint256 value) external virtual returns (bool) {
        spender;
        value;
        revert NonTransferable();
    }
}
