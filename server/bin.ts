#!/usr/bin/env node
import { processIo, runCli } from "../src/cli-io.js";
import { createServerCli } from "./cli.js";

const io = processIo();
process.exitCode = await runCli(createServerCli(io), process.argv.slice(2), io);
