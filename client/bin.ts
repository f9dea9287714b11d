#!/usr/bin/env node
import { processIo, runCli } from "../src/cli-io.js";
import { createClientCli } from "./cli.js";

const io = processIo();
process.exitCode = await runCli(createClientCli(io), process.argv.slice(2), io);
