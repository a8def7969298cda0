--- Test helper: runs a shell command and returns its exit status, stdout and
--- stderr (until po.run exists, through the shell and temporary files).
local M = {}

local function read_all(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  os.remove(path)
  return s
end

--- Quotes s for /bin/sh.
function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- Runs command (a shell string) with optional stdin text; returns
--- status, stdout, stderr.
function M.sh(command, stdin)
  local out, err = os.tmpname(), os.tmpname()
  local input = ""
  if stdin then
    local inpath = os.tmpname()
    local f = assert(io.open(inpath, "wb"))
    f:write(stdin)
    f:close()
    input = " < " .. M.quote(inpath)
    -- the command's status, not rm's, is the status of the whole
    command = "(" .. command .. ")" .. input .. "; s=$?; rm -f " .. M.quote(inpath) .. "; exit $s"
    input = ""
  end
  local status_file = os.tmpname()
  os.execute("(" .. command .. ") > " .. M.quote(out) .. " 2> " .. M.quote(err) .. input
    .. " </dev/null; echo $? > " .. M.quote(status_file))
  local status = tonumber(read_all(status_file))
  return status, read_all(out), read_all(err)
end

--- The whole content of the file at path (raises if it cannot be read).
function M.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

--- Writes text over the file at path in place (same inode: a process that
--- has it open or mapped sees the new bytes), creating it if needed.
function M.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

--- Makes a new empty directory and returns its path.
function M.tempdir()
  local path = os.tmpname()
  os.remove(path)
  assert(os.execute("mkdir -p " .. M.quote(path)) == 0)
  return path
end

--- Removes a directory and everything in it.
function M.rmdir(path)
  os.execute("rm -rf " .. M.quote(path))
end

--- The poengine binary under test.
M.bin = os.getenv("POENGINE_BIN") or "build/poengine"

--- Runs poengine with the given argument string (already quoted as needed).
function M.poengine(args, stdin)
  return M.sh(M.quote(M.bin) .. " " .. args, stdin)
end

--- Writes text to a new temporary file and returns its path.
function M.tempfile(text, suffix)
  local path = os.tmpname() .. (suffix or "")
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

return M
