# pragma version ~=0.4.3
"""
@title Paygent USD: a USDC-like test token (and, with another name and symbol, any 6-decimal stablecoin)
@notice ERC-20 with 6 decimals plus EIP-3009 (transfer/receive with authorization, cancel)
        implemented the way USDC v2.2 (FiatTokenV2_2) does it:
        - EIP-712 domain (name, version "2", chainId, verifyingContract);
        - every EIP-3009 entry point in both forms, (v, r, s) and (bytes signature);
        - EOA signatures checked with ecrecover (low-s, v in {27, 28}), contract signers
          through EIP-1271 `isValidSignature`;
        - USDC's revert strings, so off-chain tools that classify USDC reverts (for example
          the x402 facilitator) work unchanged.
        The name and the symbol are constructor arguments (the dev stack deploys "Paygent USD"/"USDC"
        and "Paygent EUR"/"EURC"); the name is the EIP-712 domain's name. The owner (the deployer) can
        mint. Test and development use only.
@dev Vyper has no function overloading, so the (bytes signature) forms are ordinary external
     functions and the (v, r, s) forms are dispatched by selector in `__default__`, which packs
     r ‖ s ‖ v into a 65-byte signature exactly as USDC v2.2 does before verifying.
     `paygent.chain.token.token_abi()` adds those three ABI entries to the compiler's ABI.
"""

# ---------------------------------------------------------------- metadata
name: public(immutable(String[32]))
symbol: public(immutable(String[8]))
version: public(constant(String[8])) = "2"
decimals: public(constant(uint8)) = 6

# Largest signature accepted by the (bytes) forms: room for smart-wallet (EIP-1271) signatures.
MAX_SIGNATURE: constant(uint256) = 2048

# ---------------------------------------------------------------- EIP-712 type hashes
EIP712_DOMAIN_TYPEHASH: constant(bytes32) = keccak256(
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
TRANSFER_WITH_AUTHORIZATION_TYPEHASH: constant(bytes32) = keccak256(
    "TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)")
RECEIVE_WITH_AUTHORIZATION_TYPEHASH: constant(bytes32) = keccak256(
    "ReceiveWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)")
CANCEL_AUTHORIZATION_TYPEHASH: constant(bytes32) = keccak256(
    "CancelAuthorization(address authorizer,bytes32 nonce)")

# Selectors of the (v, r, s) overloads, dispatched in __default__.
TRANSFER_WITH_AUTHORIZATION_VRS: constant(bytes4) = method_id(
    "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)",
    output_type=bytes4)
RECEIVE_WITH_AUTHORIZATION_VRS: constant(bytes4) = method_id(
    "receiveWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)",
    output_type=bytes4)
CANCEL_AUTHORIZATION_VRS: constant(bytes4) = method_id(
    "cancelAuthorization(address,bytes32,uint8,bytes32,bytes32)", output_type=bytes4)

# EIP-1271: isValidSignature(bytes32,bytes) returns this selector for a valid signature.
EIP1271_MAGIC_VALUE: constant(bytes32) = 0x1626ba7e00000000000000000000000000000000000000000000000000000000
# secp256k1n / 2: signatures with a larger s are malleable and rejected (as USDC's ECRecover does).
MAX_S: constant(bytes32) = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0

# ---------------------------------------------------------------- events
event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256

event Approval:
    owner: indexed(address)
    spender: indexed(address)
    value: uint256

event AuthorizationUsed:
    authorizer: indexed(address)
    nonce: indexed(bytes32)

event AuthorizationCanceled:
    authorizer: indexed(address)
    nonce: indexed(bytes32)

# ---------------------------------------------------------------- storage
owner: public(address)
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
# authorizer => nonce => used or canceled
authorizationState: public(HashMap[address, HashMap[bytes32, bool]])


@deploy
def __init__(name_: String[32], symbol_: String[8]):
    assert len(name_) > 0 and len(symbol_) > 0, "PaygentUSD: empty name or symbol"
    name = name_
    symbol = symbol_
    self.owner = msg.sender


# ---------------------------------------------------------------- ERC-20
@external
def transfer(to: address, amount: uint256) -> bool:
    self._transfer(msg.sender, to, amount)
    return True


@external
def transferFrom(from_: address, to: address, amount: uint256) -> bool:
    allowed: uint256 = self.allowance[from_][msg.sender]
    assert amount <= allowed, "ERC20: transfer amount exceeds allowance"
    self._transfer(from_, to, amount)
    if allowed != max_value(uint256):  # an infinite allowance is never spent down
        self.allowance[from_][msg.sender] = allowed - amount
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    assert spender != empty(address), "ERC20: approve to the zero address"
    self.allowance[msg.sender][spender] = amount
    log Approval(owner=msg.sender, spender=spender, value=amount)
    return True


@external
def mint(to: address, amount: uint256) -> bool:
    """@notice Create `amount` atomic units for `to`. Only the owner may mint."""
    assert msg.sender == self.owner, "PaygentUSD: caller is not the owner"
    assert to != empty(address), "PaygentUSD: mint to the zero address"
    self.totalSupply += amount
    self.balanceOf[to] += amount
    log Transfer(sender=empty(address), receiver=to, value=amount)
    return True


@internal
def _transfer(from_: address, to: address, amount: uint256):
    assert from_ != empty(address), "ERC20: transfer from the zero address"
    assert to != empty(address), "ERC20: transfer to the zero address"
    assert amount <= self.balanceOf[from_], "ERC20: transfer amount exceeds balance"
    self.balanceOf[from_] -= amount
    self.balanceOf[to] += amount
    log Transfer(sender=from_, receiver=to, value=amount)


# ---------------------------------------------------------------- EIP-712
@internal
@view
def _domain_separator() -> bytes32:
    # Computed on every call with the current chain id, as USDC v2.2 does (safe across forks).
    return keccak256(abi_encode(EIP712_DOMAIN_TYPEHASH, keccak256(name), keccak256(version),
                                chain.id, self))


@external
@view
def DOMAIN_SEPARATOR() -> bytes32:
    return self._domain_separator()


@external
@view
def eip712Domain() -> (bytes1, String[32], String[8], uint256, address, bytes32, DynArray[uint256, 1]):
    """@notice EIP-5267 description of the domain: fields 0x0f = name, version, chainId, verifyingContract."""
    return (0x0f, name, version, chain.id, self, empty(bytes32), [])


# ---------------------------------------------------------------- signatures
@internal
@view
def _recover(digest: bytes32, signature: Bytes[MAX_SIGNATURE]) -> address:
    # USDC's ECRecover.recover: 65 bytes r ‖ s ‖ v, low s, v in {27, 28}, non-zero signer.
    assert len(signature) == 65, "ECRecover: invalid signature length"
    r: bytes32 = extract32(signature, 0)
    s: bytes32 = extract32(signature, 32)
    v: uint256 = convert(convert(slice(signature, 64, 1), bytes1), uint256)
    assert convert(s, uint256) <= convert(MAX_S, uint256), "ECRecover: invalid signature 's' value"
    assert v == 27 or v == 28, "ECRecover: invalid signature 'v' value"
    signer: address = ecrecover(digest, v, r, s)
    assert signer != empty(address), "ECRecover: invalid signature"
    return signer


@internal
@view
def _require_valid_signature(signer: address, struct_hash: bytes32, signature: Bytes[MAX_SIGNATURE]):
    # USDC's SignatureChecker.isValidSignatureNow: ecrecover for EOAs, EIP-1271 for contracts.
    digest: bytes32 = keccak256(concat(b"\x19\x01", self._domain_separator(), struct_hash))
    valid: bool = False
    if not signer.is_contract:
        valid = self._recover(digest, signature) == signer
    else:
        ok: bool = False
        response: Bytes[32] = b""
        ok, response = raw_call(
            signer,
            abi_encode(digest, signature, method_id=method_id("isValidSignature(bytes32,bytes)")),
            max_outsize=32, is_static_call=True, revert_on_failure=False)
        valid = ok and len(response) == 32 and extract32(response, 0) == EIP1271_MAGIC_VALUE
    assert valid, "FiatTokenV2: invalid signature"


# ---------------------------------------------------------------- EIP-3009
@internal
@view
def _require_unused_authorization(authorizer: address, nonce: bytes32):
    assert not self.authorizationState[authorizer][nonce], "FiatTokenV2: authorization is used or canceled"


@internal
def _transfer_with_authorization(typehash: bytes32, from_: address, to: address, amount: uint256,
                                 valid_after: uint256, valid_before: uint256, nonce: bytes32,
                                 signature: Bytes[MAX_SIGNATURE]):
    # USDC order: validity window, unused nonce, signature; then burn the nonce and move the funds.
    assert block.timestamp > valid_after, "FiatTokenV2: authorization is not yet valid"
    assert block.timestamp < valid_before, "FiatTokenV2: authorization is expired"
    self._require_unused_authorization(from_, nonce)
    struct_hash: bytes32 = keccak256(abi_encode(typehash, from_, to, amount, valid_after, valid_before, nonce))
    self._require_valid_signature(from_, struct_hash, signature)
    self.authorizationState[from_][nonce] = True
    log AuthorizationUsed(authorizer=from_, nonce=nonce)
    self._transfer(from_, to, amount)


@internal
def _cancel_authorization(authorizer: address, nonce: bytes32, signature: Bytes[MAX_SIGNATURE]):
    self._require_unused_authorization(authorizer, nonce)
    self._require_valid_signature(
        authorizer, keccak256(abi_encode(CANCEL_AUTHORIZATION_TYPEHASH, authorizer, nonce)), signature)
    self.authorizationState[authorizer][nonce] = True
    log AuthorizationCanceled(authorizer=authorizer, nonce=nonce)


@external
def transferWithAuthorization(from_: address, to: address, amount: uint256, validAfter: uint256,
                              validBefore: uint256, nonce: bytes32, signature: Bytes[MAX_SIGNATURE]):
    """@notice Anyone may submit `from_`'s signed authorization to move `amount` to `to`."""
    self._transfer_with_authorization(TRANSFER_WITH_AUTHORIZATION_TYPEHASH, from_, to, amount,
                                      validAfter, validBefore, nonce, signature)


@external
def receiveWithAuthorization(from_: address, to: address, amount: uint256, validAfter: uint256,
                             validBefore: uint256, nonce: bytes32, signature: Bytes[MAX_SIGNATURE]):
    """@notice Like transferWithAuthorization, but only the payee may submit it (no front-running)."""
    assert to == msg.sender, "FiatTokenV2: caller must be the payee"
    self._transfer_with_authorization(RECEIVE_WITH_AUTHORIZATION_TYPEHASH, from_, to, amount,
                                      validAfter, validBefore, nonce, signature)


@external
def cancelAuthorization(authorizer: address, nonce: bytes32, signature: Bytes[MAX_SIGNATURE]):
    """@notice Burn an unused nonce so the matching authorization can never be used."""
    self._cancel_authorization(authorizer, nonce, signature)


# ---------------------------------------------------------------- (v, r, s) forms
@internal
@pure
def _pack(v: uint8, r: bytes32, s: bytes32) -> Bytes[65]:
    # abi.encodePacked(r, s, v), as USDC v2.2 does before calling the (bytes) form.
    return concat(r, s, convert(v, bytes1))


@external
def __default__():
    """
    @notice Dispatches the (v, r, s) overloads that Vyper cannot declare next to the (bytes) ones:
            transferWithAuthorization / receiveWithAuthorization(address,address,uint256,uint256,
            uint256,bytes32,uint8,bytes32,bytes32) and cancelAuthorization(address,bytes32,uint8,
            bytes32,bytes32). Their arguments are all static, so the calldata length is fixed.
    """
    selector: bytes4 = convert(slice(msg.data, 0, 4), bytes4)
    if selector == CANCEL_AUTHORIZATION_VRS:
        authorizer: address = empty(address)
        c_nonce: bytes32 = empty(bytes32)
        c_v: uint8 = 0
        c_r: bytes32 = empty(bytes32)
        c_s: bytes32 = empty(bytes32)
        authorizer, c_nonce, c_v, c_r, c_s = abi_decode(
            slice(msg.data, 4, 160), (address, bytes32, uint8, bytes32, bytes32))
        self._cancel_authorization(authorizer, c_nonce, self._pack(c_v, c_r, c_s))
        return

    typehash: bytes32 = empty(bytes32)
    if selector == TRANSFER_WITH_AUTHORIZATION_VRS:
        typehash = TRANSFER_WITH_AUTHORIZATION_TYPEHASH
    elif selector == RECEIVE_WITH_AUTHORIZATION_VRS:
        typehash = RECEIVE_WITH_AUTHORIZATION_TYPEHASH
    else:
        raise "PaygentUSD: unknown function"

    from_: address = empty(address)
    to: address = empty(address)
    amount: uint256 = 0
    valid_after: uint256 = 0
    valid_before: uint256 = 0
    nonce: bytes32 = empty(bytes32)
    v: uint8 = 0
    r: bytes32 = empty(bytes32)
    s: bytes32 = empty(bytes32)
    from_, to, amount, valid_after, valid_before, nonce, v, r, s = abi_decode(
        slice(msg.data, 4, 288),
        (address, address, uint256, uint256, uint256, bytes32, uint8, bytes32, bytes32))
    if typehash == RECEIVE_WITH_AUTHORIZATION_TYPEHASH:
        assert to == msg.sender, "FiatTokenV2: caller must be the payee"
    self._transfer_with_authorization(typehash, from_, to, amount, valid_after, valid_before, nonce,
                                      self._pack(v, r, s))
